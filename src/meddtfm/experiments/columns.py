"""The metric columns of the studies' tables, which of them can be computed here, and their cells.

A column is (label, summary key, the metric of ``meddtfm.evaluation.runner.METRICS`` that computes it,
better): its cells show ``report.summarize``'s mean ± std of the summary key over seeds.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation.report import format_number
from ..files import atomic_write
from .presets import EvalSpec

Column = tuple[str, str, str, str]
# Dice is on the lesion-present classes (an absent class predicted empty would score 1); SSIM and PSNR also
# of the average of K draws (EvalSpec.average_of), the fair comparison of a sampler with a regressor.
COLUMNS: tuple[Column, ...] = (
    ("FRD", "frd/mean", "frd", "↓"), ("FID", "fid/mean", "fid", "↓"), ("SSIM", "ssim/mean", "paired", "↑"),
    ("SSIM avg-K", "ssim_avg{k}/mean", "paired", "↑"), ("MS-SSIM", "ms_ssim/mean", "paired", "↑"),
    ("PSNR", "psnr/mean", "paired", "↑"), ("PSNR avg-K", "psnr_avg{k}/mean", "paired", "↑"),
    ("Dice", "dice_present/mean", "dice", "↑"))
METRIC_NAMES = frozenset(c[2] for c in COLUMNS)


def resolved_columns(average_of: int, labels: Sequence[str] | None = None) -> list[Column]:
    """``COLUMNS`` (or those labelled ``labels``, in order), K filled in: ``SSIM avg-4`` reads ``ssim_avg4/mean``."""
    chosen = COLUMNS if labels is None else [next(c for c in COLUMNS if c[0] == label) for label in labels]
    return [(label.replace("-K", f"-{average_of}"), key.format(k=average_of), metric, better)
            for label, key, metric, better in chosen]


@dataclass
class Metrics:
    """The metrics computed, why each other column is not, and the FID network's weights file."""

    computed: tuple[str, ...]
    missing: dict[str, str]
    inception: str | None


def choose_metrics(spec: EvalSpec, inception: str | None) -> Metrics:
    """``spec``'s metrics (plus FID when weights are given) that can run here, and why the others cannot."""
    from ..evaluation.distribution import MissingDependencyError, require_frd  # torchmetrics: only when scoring

    wanted = [*spec.metrics, *(["fid"] if inception and "fid" not in spec.metrics else [])]
    missing = {c[2]: "off in this preset" for c in COLUMNS if c[2] not in wanted}
    if "frd" in wanted:
        try:
            require_frd()
        except MissingDependencyError:
            missing["frd"] = "pip install -e '.[eval]'"
    if "fid" in wanted and not inception:
        missing["fid"] = "needs --inception-weights FILE"
    return Metrics(tuple(m for m in wanted if m not in missing), missing, inception)


def cell(summary: dict[str, dict[str, Any]], key: str, why: str | None) -> tuple[str, str, str]:
    """(markdown text, csv mean, csv std) of one metric of a ``report.summarize`` summary."""
    s = summary.get(key)
    if s is None:
        return f"n/a ({why or 'not computed: see the notes'})", "n/a", ""
    std = s["std"]
    text = format_number(s["mean"]) + (f" ± {format_number(std)}" if std is not None else "")
    return text, repr(float(s["mean"])), "" if std is None else repr(float(std))


def write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> Path:
    """Write ``rows`` (the header first) to ``path`` as CSV (UTF-8), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)

    return atomic_write(path, write)
