"""Table 1 of the paper, measured: the presets, the four methods, and the table files.

A preset (``configs/table1/{ci,cpu,paper}.yaml``, schema ``Preset``) fixes the datasets, the model sizes,
the evaluation and one training budget that every generator gets: ``budget.images`` images seen
(``train.steps x data.batch_size x train.grad_accumulation``) and, optionally, a wall-clock cap per run.
``meddtfm reproduce table1`` (``meddtfm.cli.reproduce``) runs it and writes the tables with ``write_tables``.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import ConfigError
from .report import format_number

REPO = Path(__file__).resolve().parents[3]
PRESET_DIR = REPO / "configs" / "table1"


@dataclass(frozen=True)
class Method:
    """One row of Table 1: run folder / preset key, the paper's name, ``meddtfm train --model``, defining overrides."""

    key: str
    label: str
    model: str
    switch: tuple[str, ...] = ()


# "Ours (no DT)" is the generator with no teacher at all (DESIGN.md): no L_DT and no reference path.
METHODS = (Method("pix2pixhd", "pix2pixHD", "pix2pixhd"), Method("medgan", "MedGAN", "medgan"),
           Method("nodt", "Ours (no DT)", "meddtfm", ("flow.dt_weights=[0,0,0,0]", "flow.reference=false")),
           Method("meddtfm", "Med-DT-FM", "meddtfm"))
# Table column, summary key, the metric of meddtfm.evaluation.runner.METRICS that computes it, better.
# Dice is on the lesion-present classes (an absent class predicted empty would score 1); SSIM and PSNR also
# of the average of K draws (EvalSpec.average_of), the fair comparison of a sampler with a regressor.
COLUMNS = (("FRD", "frd/mean", "frd", "↓"), ("FID", "fid/mean", "fid", "↓"), ("SSIM", "ssim/mean", "paired", "↑"),
           ("SSIM avg-K", "ssim_avg{k}/mean", "paired", "↑"), ("MS-SSIM", "ms_ssim/mean", "paired", "↑"),
           ("PSNR", "psnr/mean", "paired", "↑"), ("PSNR avg-K", "psnr_avg{k}/mean", "paired", "↑"),
           ("Dice", "dice_present/mean", "dice", "↑"))


def resolved_columns(average_of: int) -> list[tuple[str, str, str, str]]:
    """``COLUMNS`` with K filled in: ``SSIM avg-4`` reads ``ssim_avg4/mean``."""
    return [(label.replace("-K", f"-{average_of}"), key.format(k=average_of), metric, better)
            for label, key, metric, better in COLUMNS]


@dataclass
class DatasetSpec:
    """A dataset of the table: its config file and ``data.root`` (relative paths: to the repository root)."""

    config: str = "configs/phantoms.yaml"
    root: str | None = None
    overrides: list[str] = field(default_factory=list)  # for every run on this dataset


@dataclass
class Budget:
    """The training budget of every generator: images seen, and a wall-clock cap per run (0: none)."""

    images: int = 320_000
    batch_size: int = 16
    max_minutes: float = 0.0


@dataclass
class EvalSpec:
    """How every method is scored: ``meddtfm evaluate`` mode B on the test split, noise-based synthesis."""

    metrics: list[str] = field(default_factory=lambda: ["paired", "dice", "frd", "fid"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    limit: int = 0  # first N test samples (0: all)
    nfe: int = 8
    solver: str = "heun"
    cfg: float = 2.0  # guidance scale of the flows (mask and caption)
    batch_size: int = 16
    frd_version: str = "v1"
    average_of: int = 4  # K: SSIM / MS-SSIM / PSNR also of the pixel mean of K draws per mask (0: off)


@dataclass
class Preset:
    """A whole Table 1 run (see ``configs/table1/``); override lists are ``key.path=value`` strings."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    common: list[str] = field(default_factory=list)  # every run
    teacher: list[str] = field(default_factory=list)  # pretrain-encoder (U-KAN teacher)
    segmenter: list[str] = field(default_factory=list)  # pretrain-encoder --model unet (evaluation U-Net)
    methods: dict[str, list[str]] = field(default_factory=dict)  # per METHODS key
    fig2_rows: int = 4  # rows of fig2.png per dataset
    convergence_frd_images: int = 0  # > 0: validation FRD on this many images at each kept flow checkpoint


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> Preset:
    """The preset ``configs/table1/NAME.yaml``, or the YAML file ``name``; ``ConfigError`` names what is wrong."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())} or give a YAML file")
    try:
        preset: Preset = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Preset), OmegaConf.load(path)))
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise ConfigError(f"invalid preset {path}: {err}") from err
    unknown = set(preset.methods) - {m.key for m in METHODS}
    bad_metrics = set(preset.evaluation.metrics) - {c[2] for c in COLUMNS}
    budget = min(preset.budget.images, preset.budget.batch_size)
    if unknown or bad_metrics or not preset.datasets or budget < 1 or not preset.evaluation.seeds:
        raise ConfigError(f"invalid preset {path}: needs datasets, a positive budget, seeds, methods among "
                          f"{[m.key for m in METHODS]} (got {sorted(unknown)}), metrics among "
                          f"{sorted({c[2] for c in COLUMNS})} (got {sorted(bad_metrics)})")
    return preset


@dataclass
class Row:
    """A method's scores on one dataset: ``summary`` is ``report.summarize`` over seeds; the budget it had."""

    method: Method
    summary: dict[str, dict[str, Any]]
    steps: int
    images: int
    seconds: float | None  # training time measured by the loop (None: reused run without a record)


@dataclass
class Block:
    """One dataset's block of the table."""

    dataset: str
    description: str
    rows: list[Row]
    reference: dict[str, float]  # the evaluation U-Net on the real test images
    missing: dict[str, str]  # metric of runner.METRICS -> why it was not computed
    notes: list[str]
    average_of: int = 0  # K of the avg-K columns


def _cell(summary: dict[str, dict[str, Any]], key: str, why: str | None) -> tuple[str, str, str]:
    """(markdown text, csv mean, csv std) of one metric."""
    s = summary.get(key)
    if s is None:
        return f"n/a ({why or 'not computed: see the notes'})", "n/a", ""
    std = s["std"]
    text = format_number(s["mean"]) + (f" ± {format_number(std)}" if std is not None else "")
    return text, repr(float(s["mean"])), "" if std is None else repr(float(std))


def markdown_block(block: Block) -> str:
    """``## dataset`` and its table: one row per method, the columns of ``resolved_columns``."""
    columns = resolved_columns(block.average_of)
    head = "| Method | " + " | ".join(f"{c[0]} {c[3]}" for c in columns) + " |"
    lines = [f"## {block.dataset}", "", block.description, "", head, "|---" * (len(columns) + 1) + "|"]
    for row in block.rows:
        cells = [_cell(row.summary, key, block.missing.get(metric))[0] for _, key, metric, _ in columns]
        lines.append(f"| {row.method.label} | " + " | ".join(cells) + " |")
    if "dice_present/mean" in block.reference:
        ceiling = format_number(block.reference["dice_present/mean"])
        lines += ["", f"Dice (lesion-present classes) of the same U-Net on the real test images (the ceiling): "
                      f"{ceiling}."]
    trained = "; ".join(f"{r.method.label} {r.steps} steps = {r.images} images"
                        + (f" in {r.seconds:.1f} s" if r.seconds is not None else "") for r in block.rows)
    lines += ["", f"Trained: {trained}."]
    if block.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in block.notes)]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_tables(out: Path, blocks: Sequence[Block], preamble: Sequence[str]) -> str:
    """Write ``out/table1.md`` (preamble, then one block per dataset) and ``out/table1.csv``; return the markdown."""
    markdown = "\n\n".join(["# Table 1 (measured)", *preamble, *(markdown_block(b) for b in blocks)]) + "\n"
    k = blocks[0].average_of if blocks else 0
    header = ["dataset", "method"] + [h for c in resolved_columns(k) for h in (c[0], f"{c[0]}_std")]
    header += ["steps", "images_seen", "train_seconds"]
    rows = []
    for block in blocks:
        for row in block.rows:
            values = [v for _, key, metric, _ in resolved_columns(block.average_of)
                      for v in _cell(row.summary, key, block.missing.get(metric))[1:]]
            seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
            rows.append([block.dataset, row.method.label, *values, row.steps, row.images, seconds])
    _atomic_write(out / "table1.md", markdown)
    tmp = out / f".table1.csv.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    os.replace(tmp, out / "table1.csv")
    return markdown


def budget_statement(steps: int, batch: int, accumulation: int, max_minutes: float) -> str:
    """The equal budget in words, from the resolved configs of the four generators."""
    cap = f"a wall-clock cap of {max_minutes:g} min per run" if max_minutes > 0 else "no wall-clock cap"
    return (f"Training budget, equal for all four generators: {steps * batch * accumulation} images seen = "
            f"{steps} steps x batch {batch} x {accumulation} accumulation, and {cap} (a run that hits the cap "
            "stops early; the rows below say how far each got).")
