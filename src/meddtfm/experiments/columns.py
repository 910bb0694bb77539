"""The metric columns of the studies' tables, which of them can be computed here, and their cells.

A column is (label, summary key, the metric of ``meddtfm.evaluation.runner.METRICS`` that computes it,
better): its cells show ``report.summarize``'s mean ± std of the summary key over seeds. Every dataset has
``COLUMNS``; one with BraTS's classes also the tumour regions' (``REGION_COLUMNS``), and a multi-channel MRI
dataset FRD and SSIM per sequence (``SEQUENCE_COLUMNS``): ``dataset_columns``.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
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
# BraTS's tumour regions (evaluation.regions), on a dataset with the classes NCR, ED, ET: Dice over the images
# whose mask has the region, HD95 in px at the model's resolution.
REGIONS = ("WT", "TC", "ET")
REGION_COLUMNS: tuple[Column, ...] = (
    *((f"Dice {r}", f"dice_{r.lower()}/mean", "brats_regions", "↑") for r in REGIONS),
    *((f"HD95 {r}", f"hd95_{r.lower()}/mean", "brats_regions", "↓") for r in REGIONS))
# Per sequence of a multi-channel MRI image, "{}" its channel name: the FRD and SSIM that the metrics give per channel.
SEQUENCE_COLUMNS: tuple[Column, ...] = (("FRD {}", "frd/{}", "frd", "↓"), ("SSIM {}", "ssim/{}", "paired", "↑"))
SEQUENCE_LABELS = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
METRIC_NAMES = frozenset(c[2] for c in (*COLUMNS, *REGION_COLUMNS))


def sequence_label(channel: str) -> str:
    """A channel's name as MRI papers write it (``t1ce`` -> ``T1ce``); another name as it is."""
    return SEQUENCE_LABELS.get(channel.lower(), channel)


def resolved_columns(average_of: int, labels: Sequence[str] | None = None) -> list[Column]:
    """``COLUMNS`` (or those labelled ``labels``, in order), K filled in: ``SSIM avg-4`` reads ``ssim_avg4/mean``."""
    chosen = COLUMNS if labels is None else [next(c for c in COLUMNS if c[0] == label) for label in labels]
    return [(label.replace("-K", f"-{average_of}"), key.format(k=average_of), metric, better)
            for label, key, metric, better in chosen]


def dataset_columns(average_of: int, sequences: Sequence[str] = (), regions: bool = False) -> list[Column]:
    """One dataset's columns: ``resolved_columns``, then with ``regions`` (BraTS's classes) ``REGION_COLUMNS``, then
    FRD and SSIM of each of ``sequences`` (its channel names; none for a 1-channel or RGB image)."""
    per_sequence = [(label.format(sequence_label(s)), key.format(s), metric, better)
                    for label, key, metric, better in SEQUENCE_COLUMNS for s in sequences]
    return [*resolved_columns(average_of), *(REGION_COLUMNS if regions else ()), *per_sequence]


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
    missing = {m: "off in this preset" for m in sorted(METRIC_NAMES) if m not in wanted}
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


def ceiling_lines(reference: Mapping[str, float], split: str) -> list[str]:
    """The evaluation U-Net on the real ``split`` images against their masks, the ceiling of the synthetic scores:
    Dice of the lesion-present classes (metric dice) and BraTS's regions (brats_regions), those in ``reference``."""
    lines = []
    if "dice_present/mean" in reference:
        lines.append(f"Dice (lesion-present classes) of the same U-Net on the real {split} images (the ceiling): "
                     f"{format_number(reference['dice_present/mean'])}.")
    if "dice_wt/mean" in reference:
        dice, hd95 = (", ".join(f"{r} {format_number(reference[f'{m}_{r.lower()}/mean'])}" for r in REGIONS)
                      for m in ("dice", "hd95"))
        lines.append(f"BraTS regions of the same U-Net on the real {split} images (the ceiling): Dice {dice}; "
                     f"HD95 (px) {hd95}.")
    return lines


def write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> Path:
    """Write ``rows`` (the header first) to ``path`` as CSV (UTF-8), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)

    return atomic_write(path, write)
