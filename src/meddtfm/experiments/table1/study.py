"""The Table 1 study from request to files: ``Table1.prepare`` checks everything, ``Table1.run`` does the work.

``prepare`` loads the preset, resolves every run's config and checks budgets, data and reusable run
folders, raising ``ConfigError`` before anything is trained or written. ``run`` trains the segmenter
stages, then the four methods (``parallel.train_all``: in this process, or ``--jobs N`` child processes,
each a fresh interpreter), scores each dataset and writes OUT's tables and figures.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ...config import ConfigError, save_config
from ...evaluation.runner import needs_segmenter
from ...training.distributed import pick_device
from ..columns import Metrics, choose_metrics
from ..figures import labelled_grid, line_plot, save_column
from ..parallel import TrainingFailed, train_all
from ..runs import Trainers, check_reuse, finished
from ..scope import pick_datasets, scoped_files, scoped_overrides
from .methods import FIG2_COLUMNS, METHODS
from .plan import Plan, plan_dataset
from .preset import Preset, load_preset
from .score import convergence, score
from .tables import write_csv, write_tables

log = logging.getLogger(__name__)


@dataclass
class Table1:
    """A checked Table 1 request: the preset (as named and as loaded), one plan per dataset, the metrics."""

    name: str
    preset: Preset
    plans: list[Plan]
    metrics: Metrics
    out: Path
    jobs: int = 1

    @classmethod
    def prepare(cls, name: str, out: str | Path, datasets: str | None, overrides: Sequence[str], seed: int | None,
                teachers: Sequence[str], segmenters: Sequence[str], inception: str | None, jobs: int = 1) -> Table1:
        """Resolve and check the request (``--preset``, ``--out``, ``--datasets``, ``--set``, ...), train nothing."""
        preset = load_preset(name)
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: give at least 1")
        names = pick_datasets(name, list(preset.datasets), datasets)
        preset.datasets = {n: preset.datasets[n] for n in names}
        metrics = choose_metrics(preset.evaluation, inception)
        out_dir = Path(out).resolve()
        user, teacher_files = scoped_overrides(overrides, names), scoped_files(teachers, names, "--teacher")
        segmenter_files = scoped_files(segmenters, names, "--segmenter")
        plans = [plan_dataset(preset, n, user[n], seed, out_dir, teacher_files.get(n), segmenter_files.get(n),
                              needs_segmenter(metrics.computed)) for n in names]
        for run in (r for plan in plans for r in plan.runs()):
            check_reuse(run)
        return cls(name, preset, plans, metrics, out_dir, jobs)

    def run(self, trainers: Trainers) -> str:
        """Train the segmenters, then the four methods (``parallel.train_all``, ``jobs`` at a time); score each
        dataset and draw its figures; write the tables. Returns ``table1.md``."""
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.preset, self.out / "preset.yaml")
        segmenters = [(r, f"{p.name}: {what}") for p in self.plans for r, what in (
            (p.teacher, "U-KAN teacher (pretrain-encoder)"),
            (p.segmenter, "evaluation U-Net (pretrain-encoder --model unet)")) if r is not None]
        generators = [(p.methods[m.key], f"{p.name}: {m.label} (train --model {m.model})")
                      for p in self.plans for m in METHODS]
        for stage, desc in ((segmenters, "segmenters"), (generators, "methods")):
            failed = train_all(stage, self.jobs, trainers, desc)
            if failed:
                raise TrainingFailed(failed)
        blocks, groups, panels, curves_csv = [], {}, [], []
        with tempfile.TemporaryDirectory(prefix="meddtfm-table1-") as tmp:
            for plan in self.plans:
                trained = {m.key: finished(plan.methods[m.key].out) for m in METHODS}
                device = pick_device(plan.methods["meddtfm"].cfg.train.device)
                log.info("%s: evaluate the four methods and draw Fig. 2", plan.name)
                block, tiles = score(plan, self.preset, self.metrics, self.out, trained, Path(tmp), device)
                blocks.append(block)
                groups[plan.name] = tiles
                log.info("%s: convergence of Med-DT-FM vs no DT", plan.name)
                curves, ylabel, why = convergence(plan, self.preset, self.metrics, Path(tmp), device)
                title = f"{plan.name}: {ylabel} vs training step" + (f" ({why})" if why else "")
                panels.append(line_plot(curves, "training step", ylabel, title))
                curves_csv += [[plan.name, label, int(x), ylabel, y] for label, pts in curves.items() for x, y in pts]
        labelled_grid(FIG2_COLUMNS, groups, self.out / "fig2.png")
        save_column(panels, self.out / "convergence.png")
        write_csv(self.out / "convergence.csv", [["dataset", "method", "step", "metric", "value"], *curves_csv])
        first = self.plans[0].methods["meddtfm"].cfg
        return write_tables(self.out, blocks, self.preamble(first.seed, pick_device(first.train.device)))

    def preamble(self, seed: int, device: torch.device) -> list[str]:
        """The paragraphs above the tables: what was run, and how every method was scored."""
        e = self.preset.evaluation
        return [
            f"Preset `{self.name}`, datasets {', '.join(p.name for p in self.plans)}, seed {seed}, device {device}. "
            "Written by `meddtfm reproduce table1`.",
            f"Scoring, identical for every method: noise-based synthesis for the masks of the {e.split} split "
            f"({'first ' + str(e.limit) if e.limit else 'all'} samples), sampling seeds {', '.join(map(str, e.seeds))} "
            f"(mean ± std over seeds); the flows integrate with {e.solver}, NFE {e.nfe}, guidance {e.cfg:g}. SSIM, "
            "MS-SSIM and PSNR against the real image of each mask, of one draw and (avg-K) of the pixel mean of "
            f"{e.average_of} draws, which is what a GAN's near-conditional-mean output is compared with fairly; Dice "
            "(lesion-present classes) of the independent MONAI U-Net (trained on the real training split, never the "
            "U-KAN teacher) on the synthetic images against their masks, and on BraTS's classes its Dice and HD95 of "
            "the tumour regions WT, TC, ET; FRD "
            f"{e.frd_version} (frd-score, v1 = log Fréchet radiomics distance) and FID (FID InceptionV3) against the "
            f"real {e.split} images. FRD, SSIM, MS-SSIM and PSNR are means over the channels; a multi-channel MRI "
            "dataset also has FRD and SSIM per sequence. ↓ lower is better, ↑ higher is better; n/a says why a metric "
            "was not computed.",
        ]
