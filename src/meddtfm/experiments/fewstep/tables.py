"""The few-step study's files: ``fewstep.md`` (one block per dataset, a row per generator and NFE) and ``fewstep.csv``.

Beside the metric columns each row has its FRD as a ratio to the base flow's at its largest NFE, its Dice
minus that row's, its sampling throughput and that as a ratio to the GAN's one pass, and the training images
it cost (a student's: the distillation's, and their fraction of the base flow's).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...evaluation.report import format_number
from ...files import atomic_write_text
from ..columns import Column, ceiling_lines, cell, resolved_columns, write_csv

COLUMNS: tuple[Column, ...] = tuple(resolved_columns(0, ["FRD", "SSIM", "Dice"]))


@dataclass
class Row:
    """One generator (``kind`` base | gan | student) at one NFE: its weights, sampler, training images, scores."""

    key: str
    kind: str
    generator: str
    nfe: int
    solver: str
    weights: Path
    images: int  # training images: the base flow's or the GAN's; a student's distillation
    fraction: float | None = None  # a student's images over the base flow's
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    images_per_second: float = 0.0

    @property
    def sampler(self) -> tuple[int, str] | None:
        """(NFE, solver) for ``compare``; None for a GAN, which has no sampler."""
        return None if self.kind == "gan" else (self.nfe, self.solver)


@dataclass
class Block:
    """One dataset's rows and what they were scored on."""

    dataset: str
    rows: list[Row]
    reference: dict[str, float]  # the evaluation U-Net on the real images of the split
    missing: dict[str, str]
    notes: list[str]
    split: str
    samples: int
    batch: int  # the throughput batch
    device: str

    def base(self) -> Row:
        """The base flow's row with the most NFE: what the students are held to."""
        return max((r for r in self.rows if r.kind == "base"), key=lambda r: r.nfe)

    def gan(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "gan"), None)


def _mean(row: Row, key: str) -> float | None:
    s = row.summary.get(key)
    return None if s is None else s["mean"]


def derived(block: Block, row: Row) -> dict[str, float | None]:
    """The row's FRD over the base's, Dice minus the base's, and img/s over the GAN's (None where missing)."""
    base, gan = block.base(), block.gan()
    frd, base_frd = _mean(row, "frd/mean"), _mean(base, "frd/mean")
    dice, base_dice = _mean(row, "dice_present/mean"), _mean(base, "dice_present/mean")
    return {"frd_vs_base": frd / base_frd if frd is not None and base_frd else None,
            "dice_vs_base": dice - base_dice if dice is not None and base_dice is not None else None,
            "speed_vs_gan": row.images_per_second / gan.images_per_second if gan else None}


def _sampler_text(row: Row) -> str:
    return {"gan": "one pass", "student": "own steps"}.get(row.kind, row.solver)


def _budget_text(row: Row) -> str:
    return f"{row.images}" + (f" ({row.fraction:.1%} of the base)" if row.fraction is not None else "")


def markdown_block(block: Block) -> str:
    """``## dataset``, its table and the ceiling and notes below it."""
    base, gan = block.base(), block.gan()
    head = ("| Generator | NFE | sampler | " + " | ".join(f"{c[0]} {c[3]}" for c in COLUMNS)
            + f" | FRD / base@{base.nfe} | Dice − base@{base.nfe} | img/s ↑ |"
            + (f" × {gan.generator} |" if gan else "") + " training images |")
    lines = [f"## {block.dataset}", "", f"{block.samples} {block.split} images; throughput on a batch of "
             f"{block.batch} on {block.device}.", "", head, "|---" * (head.count("|") - 1) + "|"]
    for row in block.rows:
        cells = [cell(row.summary, key, block.missing.get(metric))[0] for _, key, metric, _ in COLUMNS]
        d = derived(block, row)
        extra = [format_number(d["frd_vs_base"]), format_number(d["dice_vs_base"]),
                 f"{row.images_per_second:.3g}", *([format_number(d["speed_vs_gan"])] if gan else []),
                 _budget_text(row)]
        lines.append(f"| {row.generator} | {row.nfe} | {_sampler_text(row)} | " + " | ".join([*cells, *extra]) + " |")
    lines += [line for text in ceiling_lines(block.reference, block.split) for line in ("", text)]
    if block.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in block.notes)]
    return "\n".join(lines)


HEADER = ["dataset", "generator", "nfe", "sampler", *(h for c in COLUMNS for h in (c[0], f"{c[0]}_std")),
          "frd_vs_base", "dice_vs_base", "images_per_second", "speed_vs_gan", "training_images", "budget_fraction"]


def csv_row(block: Block, row: Row) -> list[Any]:
    values = [v for _, key, metric, _ in COLUMNS for v in cell(row.summary, key, block.missing.get(metric))[1:]]
    d = derived(block, row)
    return [block.dataset, row.generator, row.nfe, _sampler_text(row), *values,
            *("" if d[k] is None else repr(d[k]) for k in ("frd_vs_base", "dice_vs_base")),
            repr(row.images_per_second), "" if d["speed_vs_gan"] is None else repr(d["speed_vs_gan"]),
            row.images, "" if row.fraction is None else repr(row.fraction)]


def write_tables(out: Path, blocks: Sequence[Block], preamble: Sequence[str]) -> str:
    """Write ``out/fewstep.md`` and ``out/fewstep.csv``; return the markdown."""
    markdown = "\n\n".join(["# Few-step synthesis (measured)", *preamble, *(markdown_block(b) for b in blocks)]) + "\n"
    atomic_write_text(out / "fewstep.md", markdown)
    write_csv(out / "fewstep.csv", [HEADER, *(csv_row(b, r) for b in blocks for r in b.rows)])
    return markdown
