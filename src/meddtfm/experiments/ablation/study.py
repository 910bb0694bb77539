"""The ablation from request to files: ``Ablation.prepare`` checks everything, ``Ablation.run`` does the work.

``prepare`` loads the preset and the variants, resolves every run and checks budgets, data and reusable
run folders, raising ``ConfigError`` before anything is trained or written. ``run`` trains the segmenter
stages, then the selected variants (``parallel.train_all``), scores every finished run found in OUT on the
validation split (``score``) and writes the tables (``tables``) and figures.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...config import ConfigError, save_config
from ...evaluation.report import summarize
from ...evaluation.runner import needs_segmenter
from ...training.distributed import pick_device
from ..budget import budget_statement, images_seen
from ..columns import Metrics, choose_metrics, write_csv
from ..compare import Scorer
from ..convergence import frd_label, logged_val_fm
from ..figures import bar_chart, line_plot, save_column
from ..parallel import Failure, TrainingFailed, train_all
from ..runs import Trainers, check_reuse
from ..scope import pick_datasets, scoped_files, scoped_overrides
from .plan import Plan, plan_dataset, scored_data
from .preset import Preset, Variant, load_preset, read_variants, reference_of
from .score import Found, found_runs, frd_points, same_weights, save_variant, score_runs
from .tables import Block, Row, columns, write_tables

log = logging.getLogger(__name__)
Curves = dict[str, list[tuple[float, float]]]


def pick_variants(variants: Sequence[Variant], only: str | None) -> list[str]:
    """The comma-separated ``only`` subset of the variants' names (None: all of them)."""
    offered = [v.name for v in variants]
    names = offered if only is None else [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in offered]
    if unknown or not names:
        raise ConfigError(f"--only: unknown variants {unknown}; choose from {', '.join(offered)}")
    return names


def pick_seeds(offered: Sequence[int], seeds: str | None) -> list[int]:
    """The comma-separated ``seeds`` subset of the preset's training seeds (None: all of them)."""
    if seeds is None:
        return list(offered)
    try:
        picked = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--seeds {seeds}: give comma-separated integers") from err
    unknown = [s for s in picked if s not in offered]
    if unknown or not picked:
        raise ConfigError(f"--seeds: {unknown or seeds!r} not among the preset's training seeds "
                          f"{', '.join(map(str, offered))}")
    return picked


@dataclass
class Report:
    """What ``Ablation.run`` wrote (``ablation.md``'s text) and the variant runs that failed."""

    markdown: str
    failed: list[Failure]


@dataclass
class Ablation:
    """A checked ablation request: the preset with its variants, the selected ones, one plan per dataset."""

    name: str
    preset: Preset
    selected: list[str]
    plans: list[Plan]
    metrics: Metrics
    out: Path
    jobs: int

    @classmethod
    def prepare(cls, name: str, out: str | Path, datasets: str | None, only: str | None, variants: str | None,
                overrides: Sequence[str], teachers: Sequence[str], segmenters: Sequence[str],
                inception: str | None, jobs: int = 1, seeds: str | None = None) -> Ablation:
        """Resolve and check the request (``--preset``, ``--only``, ``--seeds``, ``--variants``, ``--set``, ...),
        train nothing."""
        preset = load_preset(name)
        if variants is not None:
            preset.variants = read_variants(variants)
        preset.seeds = pick_seeds(preset.seeds, seeds)
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: give at least 1")
        names = pick_datasets(name, list(preset.datasets), datasets)
        preset.datasets = {n: preset.datasets[n] for n in names}
        selected = pick_variants(preset.variants, only)
        metrics = choose_metrics(preset.evaluation, inception)
        out_dir = Path(out).resolve()
        user, teacher_files = scoped_overrides(overrides, names), scoped_files(teachers, names, "--teacher")
        segmenter_files = scoped_files(segmenters, names, "--segmenter")
        plans = [plan_dataset(preset, preset.variants, selected, n, user[n], out_dir, teacher_files.get(n),
                              segmenter_files.get(n), needs_segmenter(metrics.computed)) for n in names]
        for run in (r for plan in plans for r in plan.all_runs()):
            check_reuse(run)
        return cls(name, preset, selected, plans, metrics, out_dir, jobs)

    def run(self, trainers: Trainers) -> Report:
        """Train the segmenters, then the variants; score every finished run; write the files."""
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.preset, self.out / "preset.yaml")
        stage1 = [(r, f"{p.name}: {r.out.name} (pretrain-encoder --model {r.model})")
                  for p in self.plans for r in p.segmenters.runs()]
        failed = train_all(stage1, self.jobs, trainers, "segmenters")
        if failed:
            raise TrainingFailed(failed)
        for plan in self.plans:
            for v in self.preset.variants:
                if v.name in self.selected:
                    save_variant(plan.folder, v)
        stage2 = [(r, f"{p.name}: {v} seed {k}") for p in self.plans for (v, k), r in p.runs.items()]
        failed = train_all(stage2, self.jobs, trainers, "variants")
        blocks, convergence, bars, rows = [], [], [], []
        with tempfile.TemporaryDirectory(prefix="meddtfm-ablation-") as tmp:
            for plan in self.plans:
                block, curves, ylabel = self.score(plan, Path(tmp))
                blocks.append(block)
                convergence.append(line_plot(curves, "images seen", ylabel, f"{plan.name}: {ylabel} vs images seen "
                                             "(mean over training seeds)"))
                rows += [[plan.name, v, int(x), ylabel, y] for v, pts in curves.items() for x, y in pts]
                for label, key in (("FRD", "frd/mean"), ("Dice", "dice_present/mean")):
                    values = {r.variant.name: (r.summary[key]["mean"], r.summary[key]["std"]) for r in block.rows
                              if key in r.summary}
                    bars.append(bar_chart(values, f"{label} (mean ± std over training seeds)",
                                          f"{plan.name}: validation {label} per variant"))
        save_column(convergence, self.out / "convergence.png")
        save_column(bars, self.out / "bars.png")
        write_csv(self.out / "convergence.csv", [["dataset", "variant", "images_seen", "metric", "value"], *rows])
        return Report(write_tables(self.out, blocks, self.preamble(failed)), failed)

    def score(self, plan: Plan, scratch: Path) -> tuple[Block, Curves, str]:
        """One dataset's block and convergence curves (variant -> (images seen, mean over seeds))."""
        e, m = dataclasses.replace(self.preset.evaluation, seeds=list(self.preset.seeds)), self.metrics
        device = pick_device(plan.base.train.device)
        found, notes = self.found(plan)
        if not found:
            return Block(plan.name, "No finished run.", [], None, {}, m.missing, notes, []), {}, ""
        runs = [r for rs in found.values() for r in rs]
        segmenter = plan.segmenters.segmenter_file if needs_segmenter(m.computed) else None
        scorer = Scorer.on_split(plan.base.data, e.split, 0, spec=e, metrics=m.computed, device=device,
                                 workdir=scratch / plan.name, segmenter=str(segmenter) if segmenter else None,
                                 inception=m.inception)
        scores = score_runs(scorer, runs, plan.folder / "eval")
        rows = [Row(rs[0].variant, [r.seed for r in rs], summarize({r.key: scores.runs[r.key] for r in rs}),
                    [r.record["step"] for r in rs], [images_seen(r.cfg, r.record["step"]) for r in rs],
                    [r.record["seconds"] for r in rs if r.record["seconds"] is not None]) for rs in found.values()]
        c = plan.base
        description = (f"{c.data.name}, {c.data.resolution} px, channels {', '.join(scorer.dataset.channel_names)}; "
                       f"scored on {scores.samples} validation images, {scores.pairs} of them paired with the real "
                       "image of their mask for SSIM. " + budget_statement(
                           c.train.steps, c.data.batch_size, c.train.grad_accumulation, c.train.max_minutes,
                           "every variant"))
        reference = reference_of(self.preset, self.preset.variants)
        block = Block(plan.name, description, rows, reference if reference in found else None, scores.reference,
                      m.missing, [*notes, *same_weights(found, reference), *scores.notes],
                      columns(e.average_of, m.computed))
        curves, ylabel = self.curves(plan, found, scorer, scratch)
        return block, curves, ylabel

    def found(self, plan: Plan) -> tuple[dict[str, list[Found]], list[str]]:
        """The finished runs in the dataset's folder scored on its data, and notes on those left out."""
        found = found_runs(plan.folder, [v.name for v in self.preset.variants])
        notes, budget = [], images_seen(plan.base)
        for name, runs in list(found.items()):
            # data.root may differ: the same data, moved
            kept = [r for r in runs if scored_data(r.cfg, ["root"]) == scored_data(plan.base, ["root"])]
            if len(kept) < len(runs):
                notes.append(f"left out: {len(runs) - len(kept)} run(s) of {name} trained on other data settings")
            if any(images_seen(r.cfg) != budget for r in kept):
                notes.append(f"{name} was trained with another budget than this preset's {budget} images")
            found[name] = kept
        return {k: v for k, v in found.items() if v}, notes

    def curves(self, plan: Plan, found: dict[str, list[Found]], scorer: Scorer, scratch: Path) -> tuple[Curves, str]:
        """Per variant, validation FRD at the kept checkpoints (else the logged validation L_FM), mean over seeds."""
        n = self.preset.convergence_frd_images
        runs = [r for rs in found.values() for r in rs]
        if n > 0 and "frd" in self.metrics.computed:
            val = dataclasses.replace(scorer, metrics=("frd",), workdir=scratch / f"{plan.name}-convergence")
            points = frd_points(val, runs, n, plan.folder / "eval", scratch)
            ylabel = frd_label(scorer.spec.frd_version, min(n, len(scorer.dataset)))
        else:
            points = {r.key: [(int(s), v) for s, v in logged_val_fm(r.folder / "metrics.csv")] for r in runs}
            ylabel = "validation L_FM (fixed noise and t)"
        curves: Curves = {}
        for name, rs in found.items():
            by_x: dict[int, list[float]] = {}
            for r in rs:
                for step, value in points[r.key]:
                    by_x.setdefault(images_seen(r.cfg, step), []).append(value)
            curves[name] = [(float(x), sum(v) / len(v)) for x, v in sorted(by_x.items())]
        return curves, ylabel

    def preamble(self, failed: Sequence[Failure]) -> list[str]:
        """The paragraphs above the tables: what was run (and failed), the split discipline, how runs were scored."""
        e, p = self.preset.evaluation, self.preset
        reference = reference_of(p, p.variants)
        failures = ["Failed in this invocation, so not in the tables: " + "; ".join(
            f"{f.what} (exit status {f.returncode}, log `{f.log}`)" for f in failed) + "."] if failed else []
        return [
            f"Preset `{self.name}`, datasets {', '.join(x.name for x in self.plans)}, training seeds "
            f"{', '.join(map(str, p.seeds))}; variants run by this invocation: {', '.join(self.selected)}. The tables "
            "hold every finished run found in the output folder. Written by `meddtfm reproduce ablation`.",
            *failures,
            "This study chooses the default recipe, so it is scored on the **validation split** only "
            f"({'first ' + str(e.limit) if e.limit else 'all'} samples; subjects disjoint from the training and test "
            "splits); the test split is never read: a recipe chosen on it could not be reported on it.",
            "Scoring, identical for every run: noise-based synthesis for the masks of the validation split, "
            f"{e.solver}, NFE {e.nfe}, guidance {e.cfg:g}; the run of training seed k samples with seed k, and each "
            "cell is the mean ± std over training seeds. FRD "
            f"{e.frd_version} (frd-score; v1 = log Fréchet radiomics distance) against the real validation images; "
            "Dice (lesion-present classes) of the independent MONAI U-Net (never the U-KAN teacher) on the synthetic "
            f"images against their masks; SSIM against the real image of each mask, of one draw and (avg-K) of the "
            f"pixel mean of {e.average_of} draws. ↓ lower is better, ↑ higher is better.",
            f"Reference: `{reference}`. `*` marks a cell whose mean differs from the reference's by more than twice "
            "the reference's std over training seeds.",
        ]
