"""Table 1's scoring of one dataset: the four generators on its test split, Fig. 2's rows, convergence curves.

Every method is scored by the same ``compare.Scorer`` (``meddtfm evaluate``'s machinery); each method's
``metrics.json`` / ``metrics.md`` land in ``OUT/DATASET/eval/METHOD/`` as ``meddtfm evaluate`` writes them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ...evaluation.regions import has_brats_classes
from ...evaluation.report import summarize, write_report
from ...evaluation.runner import needs_segmenter
from ..budget import budget_statement, images_seen
from ..columns import Metrics
from ..compare import Scorer, compare, mri_sequences, side_by_side
from ..convergence import frd_label, kept_states_frd, logged_val_fm
from ..figures import GridRow
from .methods import FIG2_METHODS, METHODS
from .plan import Plan
from .preset import Preset
from .tables import Block, Row


def score(plan: Plan, preset: Preset, metrics: Metrics, out: Path, trained: dict[str, dict], scratch: Path,
          device: torch.device) -> tuple[Block, list[GridRow]]:
    """Evaluate the four generators of one dataset; its table block and its Fig. 2 rows (``compare.side_by_side``)."""
    cfg, split = plan.methods["meddtfm"].cfg, preset.evaluation.split
    segmenter = str(plan.segmenter_file) if needs_segmenter(metrics.computed) else None
    scorer = Scorer.on_split(cfg.data, split, cfg.seed, spec=preset.evaluation, metrics=metrics.computed,
                             device=device, workdir=scratch / plan.name, segmenter=segmenter,
                             inception=metrics.inception)
    weights = {k: r.out / "final.safetensors" for k, r in plan.methods.items()}
    result = compare(scorer, weights, grid_dir=out / plan.name / "eval")
    settings = {"split": split, "samples": result.samples, "metrics": list(metrics.computed),
                "evaluation": dataclasses.asdict(preset.evaluation), "segmenter": segmenter,
                "inception_weights": metrics.inception}
    rows = []
    for m in METHODS:
        write_report(out / plan.name / "eval" / m.key, result.runs[m.key], result.reference, result.notes,
                     {**settings, "checkpoint": str(weights[m.key])})
        c, t = plan.methods[m.key].cfg, trained[m.key]
        rows.append(Row(m, summarize(result.runs[m.key]), t["step"], images_seen(c, t["step"]), t["seconds"]))
    d = scorer.dataset
    description = (f"{cfg.data.name}, {cfg.data.resolution} px, channels {', '.join(d.channel_names)}, classes "
                   f"{', '.join(d.class_names)}; scored on {result.samples} {split} images, {result.pairs} of them "
                   "paired with the real image of their mask for SSIM, MS-SSIM and PSNR. "
                   + budget_statement(cfg.train.steps, cfg.data.batch_size, cfg.train.grad_accumulation,
                                      cfg.train.max_minutes))
    tiles = side_by_side(scorer, {k: weights[k] for k in FIG2_METHODS}, preset.fig2_rows, preset.evaluation.seeds[0])
    return Block(plan.name, description, rows, result.reference, metrics.missing, result.notes,
                 preset.evaluation.average_of, split, mri_sequences(d.channel_names),
                 has_brats_classes(d.class_names)), tiles


def convergence(plan: Plan, preset: Preset, metrics: Metrics, scratch: Path,
                device: torch.device) -> tuple[dict[str, list], str, str]:
    """Curves of Med-DT-FM and no DT: validation FRD at each kept checkpoint, else the logged validation L_FM.

    Returns the curves (label -> (step, value) points), the y-axis label, and why FRD is not plotted ("" if it is).
    """
    flows = {"Med-DT-FM": plan.methods["meddtfm"], "Ours (no DT)": plan.methods["nodt"]}
    n = preset.convergence_frd_images
    if n > 0 and "frd" in metrics.computed:
        cfg = flows["Med-DT-FM"].cfg
        val = Scorer.on_split(cfg.data, "val", cfg.seed, spec=preset.evaluation, metrics=("frd",), device=device,
                              workdir=scratch / f"{plan.name}-val")
        folders = {label: run.out for label, run in flows.items()}
        ylabel = frd_label(preset.evaluation.frd_version, min(n, len(val.dataset)))
        return kept_states_frd(val, folders, n, scratch), ylabel, ""
    why = metrics.missing.get("frd") or "per-checkpoint FRD off in this preset"
    curves = {label: logged_val_fm(run.out / "metrics.csv") for label, run in flows.items()}
    return curves, "validation L_FM (fixed noise and t)", f"FRD n/a: {why}"
