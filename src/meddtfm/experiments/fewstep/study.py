"""The few-step study from request to files: ``FewStep.prepare`` checks everything, ``FewStep.run`` does the work.

``run`` trains the segmenter stages, the base flow and the GAN (``parallel.train_all``), then the students
(``distill-steps`` runs of the base flow), scores every row on one split with ``compare.compare`` (the
same samples, sampling seeds, segmenter and metrics; each row its own sampler; a row's scores are kept in
``DATASET/eval/ROW/metrics.json`` and reused while its weights and settings are unchanged, ``reuse``),
measures each row's sampling throughput on the same batch in this process, and writes ``fewstep.md`` and
``fewstep.csv``.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ...config import ConfigError, save_config
from ...config.baselines import BASELINES
from ...evaluation.report import summarize
from ...training.distributed import pick_device
from ..budget import images_seen
from ..columns import Metrics, choose_metrics
from ..compare import Scorer
from ..parallel import TrainingFailed, train_all
from ..reuse import score_cached
from ..runs import Trainers, check_reuse, finished
from ..scope import pick_datasets, pick_subset, scoped_files, scoped_overrides
from .plan import Plan, plan_dataset
from .preset import Preset, load_preset
from .tables import Block, Row, write_tables

log = logging.getLogger(__name__)
AUTO = "auto"  # a student's own k uniform steps (flow.few_step)


def images_per_second(generate, batch: dict, seed: int, repeats: int) -> float:
    """Images per second of ``generate`` on ``batch``: one warm-up call, then the fastest of ``repeats``."""
    best = math.inf
    with torch.no_grad():
        generate(batch, seed).cpu()
        for _ in range(repeats):
            start = time.perf_counter()
            generate(batch, seed).cpu()  # .cpu() waits for the device
            best = min(best, time.perf_counter() - start)
    return len(batch["mask"]) / best


@dataclass
class FewStep:
    """A checked request: the preset, one plan per dataset, the metrics, the output folder, trainings at once."""

    name: str
    preset: Preset
    plans: list[Plan]
    metrics: Metrics
    out: Path
    jobs: int = 1

    @classmethod
    def prepare(cls, name: str, out: str | Path, datasets: str | None, methods: str | None,
                overrides: Sequence[str], seed: int | None, teachers: Sequence[str], segmenters: Sequence[str],
                jobs: int = 1) -> FewStep:
        """Resolve and check the request, train nothing."""
        preset = load_preset(name)
        preset.methods = pick_subset("--methods", preset.methods, methods)
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: give at least 1")
        names = pick_datasets(name, list(preset.datasets), datasets)
        preset.datasets = {n: preset.datasets[n] for n in names}
        user, out_dir = scoped_overrides(overrides, names), Path(out).resolve()
        teacher_files = scoped_files(teachers, names, "--teacher")
        segmenter_files = scoped_files(segmenters, names, "--segmenter")
        plans = [plan_dataset(preset, n, user[n], seed, out_dir, teacher_files.get(n), segmenter_files.get(n))
                 for n in names]
        for run in (r for plan in plans for r in plan.runs()):
            check_reuse(run)
        return cls(name, preset, plans, choose_metrics(preset.evaluation, None), out_dir, jobs)

    def run(self, trainers: Trainers) -> str:
        """Train, distil, score; returns ``fewstep.md``."""
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.preset, self.out / "preset.yaml")
        stages = [
            ([(r, f"{p.name}: {what}") for p in self.plans for r, what in (
                (p.teacher, "U-KAN teacher (pretrain-encoder)"),
                (p.segmenter, "evaluation U-Net (pretrain-encoder --model unet)")) if r is not None], "segmenters"),
            ([(r, f"{p.name}: {r.out.name} (train --model {r.model})") for p in self.plans
              for r in (p.base, p.gan) if r is not None], "base flow and GAN"),
            ([(r, f"{p.name}: {m} (distill-steps)") for p in self.plans for m, r in p.students.items()], "students"),
        ]
        for runs, desc in stages:
            failed = train_all(runs, self.jobs, trainers, desc)
            if failed:
                raise TrainingFailed(failed)
        with tempfile.TemporaryDirectory(prefix="meddtfm-fewstep-") as tmp:
            blocks = [self.score(plan, Path(tmp)) for plan in self.plans]
        return write_tables(self.out, blocks, self.preamble())

    def rows(self, plan: Plan) -> list[Row]:
        """The table's rows before scoring: the base flow per sampler, the GAN's pass, each student per NFE."""
        base_cfg, base_out = plan.base.cfg, plan.base.out / "final.safetensors"
        base_images = images_seen(base_cfg, finished(plan.base.out)["step"])
        rows = [Row(f"base-{s.solver}-{s.nfe}", "base", "Med-DT-FM", s.nfe, s.solver, base_out, base_images)
                for s in self.preset.base]
        if plan.gan is not None:
            gan_images = images_seen(plan.gan.cfg, finished(plan.gan.out)["step"])
            rows.append(Row(self.preset.gan, "gan", BASELINES[self.preset.gan].label, 1, "",
                            plan.gan.out / "final.safetensors", gan_images))
        for method, run in plan.students.items():
            images = images_seen(run.cfg, finished(run.out)["step"])
            weights, fraction = run.out / "final.safetensors", images / base_images
            rows += [Row(f"{method}-{k}", "student", f"{method} student", k, AUTO, weights, images, fraction)
                     for k in self.preset.steps]
        return rows

    def score(self, plan: Plan, scratch: Path) -> Block:
        """Every row of one dataset on the same samples and seeds; its block of the tables."""
        spec, cfg = self.preset.evaluation, plan.base.cfg
        device = pick_device(cfg.train.device)
        scorer = Scorer.on_split(cfg.data, spec.split, cfg.seed, spec=spec, metrics=self.metrics.computed,
                                 device=device, workdir=scratch / plan.name, segmenter=str(plan.segmenter_file))
        rows = self.rows(plan)
        log.info("%s: score %d rows on the %s split", plan.name, len(rows), spec.split)
        scored = score_cached(scorer, {r.key: r.weights for r in rows}, self.out / plan.name / "eval",
                              samplers={r.key: r.sampler for r in rows if r.sampler},
                              settings={r.key: {"split": spec.split, "nfe": r.nfe, "solver": r.solver,
                                                "checkpoint": str(r.weights)} for r in rows})
        batch = next(iter(scorer.loader(spec.limit)))
        for r in rows:
            r.summary = summarize(scored.docs[r.key]["runs"])
            generate, _ = scorer.generator(r.weights, r.sampler)
            r.images_per_second = images_per_second(generate, batch, spec.seeds[0], self.preset.throughput_repeats)
        threads = torch.get_num_threads() if device.type == "cpu" else None
        return Block(plan.name, rows, scored.reference, self.metrics.missing, scored.notes, spec.split,
                     scored.samples, len(batch["mask"]), f"{device.type}" + (f", {threads} threads" if threads else ""))

    def preamble(self) -> list[str]:
        """The paragraphs above the tables: what was run, and how every row was scored."""
        e, p = self.preset.evaluation, self.preset
        return [
            f"Preset `{self.name}`, datasets {', '.join(pl.name for pl in self.plans)}. Written by "
            "`meddtfm reproduce fewstep`.",
            f"Rows: the base flow (Med-DT-FM as configured) with each sampler; its students, each distilled from it "
            f"by `meddtfm distill-steps` for {', '.join(map(str, p.steps))} steps and sampled with its own uniform "
            f"steps (`auto`){'; ' + BASELINES[p.gan].label + ' at the base flow budget, one pass' if p.gan else ''}. "
            f"Scoring, identical for every row: noise-based synthesis for the masks of the {e.split} split "
            f"({'first ' + str(e.limit) if e.limit else 'all'} samples), sampling seeds {', '.join(map(str, e.seeds))} "
            f"(mean ± std over sampling seeds; one training seed), guidance {e.cfg:g} (the students have it in their "
            f"weights); FRD {e.frd_version} (frd-score) against the real {e.split} images, SSIM against the real image "
            "of each mask, Dice (lesion-present classes) of the independent MONAI U-Net. img/s: images per second of "
            "the row's sampler on the first batch of the split, the fastest of "
            f"{p.throughput_repeats} after a warm-up, every row in this one process. ↓ lower is better, ↑ higher.",
        ]
