"""Table 1's files: ``table1.md`` (one block per dataset, rows as in the paper) and ``table1.csv``.

Each dataset has its own columns (``columns.dataset_columns``): BraTS's regions only on BraTS's classes, FRD and
SSIM per sequence only on multi-channel MRI. Each markdown block has its own header; the csv has one header, the
union of the blocks' columns, and empty cells where a dataset has no such column ("n/a": it has, not computed).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...evaluation.report import format_number
from ...files import atomic_write_text
from ..columns import Column, ceiling_lines, cell, dataset_columns, write_csv
from .methods import Method


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
    reference: dict[str, float]  # the evaluation U-Net on the real images of the split
    missing: dict[str, str]  # metric of runner.METRICS -> why it was not computed
    notes: list[str]
    average_of: int = 0  # K of the avg-K columns
    split: str = "test"  # the split scored
    sequences: tuple[str, ...] = ()  # channels with their own FRD and SSIM columns (multi-channel MRI)
    regions: bool = False  # BraTS's classes: the tumour regions' columns

    @property
    def columns(self) -> list[Column]:
        """This dataset's columns (``columns.dataset_columns``)."""
        return dataset_columns(self.average_of, self.sequences, self.regions)


def wt_fraction(block: Block) -> str:
    """Each method's Dice WT as a fraction of the U-Net's on the real images ("" without both)."""
    ceiling = block.reference.get("dice_wt/mean")
    scores = {r.method.label: r.summary["dice_wt/mean"]["mean"] for r in block.rows if "dice_wt/mean" in r.summary}
    if not ceiling or not scores:
        return ""
    return "Dice WT as a fraction of the ceiling: " + ", ".join(
        f"{label} {format_number(score / ceiling)}" for label, score in scores.items()) + "."


def markdown_block(block: Block) -> str:
    """``## dataset`` and its table: one row per method, the block's own columns; then the ceiling and notes."""
    columns = block.columns
    head = "| Method | " + " | ".join(f"{c[0]} {c[3]}" for c in columns) + " |"
    lines = [f"## {block.dataset}", "", block.description, "", head, "|---" * (len(columns) + 1) + "|"]
    for row in block.rows:
        cells = [cell(row.summary, key, block.missing.get(metric))[0] for _, key, metric, _ in columns]
        lines.append(f"| {row.method.label} | " + " | ".join(cells) + " |")
    lines += [line for text in ceiling_lines(block.reference, block.split) for line in ("", text)]
    lines += ["", fraction] if (fraction := wt_fraction(block)) else []
    trained = "; ".join(f"{r.method.label} {r.steps} steps = {r.images} images"
                        + (f" in {r.seconds:.1f} s" if r.seconds is not None else "") for r in block.rows)
    lines += ["", f"Trained: {trained}."]
    if block.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in block.notes)]
    return "\n".join(lines)


def csv_header(blocks: Sequence[Block]) -> tuple[list[Column], list[str]]:
    """The union of the blocks' columns (in ``dataset_columns``'s order) and the csv header they give."""
    sequences = tuple(dict.fromkeys(s for b in blocks for s in b.sequences))
    columns = dataset_columns(blocks[0].average_of if blocks else 0, sequences, any(b.regions for b in blocks))
    header = ["dataset", "method", *(h for c in columns for h in (c[0], f"{c[0]}_std")),
              "steps", "images_seen", "train_seconds"]
    return columns, header


def csv_row(block: Block, row: Row, columns: Sequence[Column]) -> list[Any]:
    """One method's csv row over ``columns``: mean and std, both empty for a column the dataset does not have."""
    own = {c[0]: c for c in block.columns}
    values = [v for label, *_ in columns for v in (
        cell(row.summary, own[label][1], block.missing.get(own[label][2]))[1:] if label in own else ("", ""))]
    seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
    return [block.dataset, row.method.label, *values, row.steps, row.images, seconds]


def write_tables(out: Path, blocks: Sequence[Block], preamble: Sequence[str]) -> str:
    """Write ``out/table1.md`` (preamble, then one block per dataset) and ``out/table1.csv``; return the markdown."""
    markdown = "\n\n".join(["# Table 1 (measured)", *preamble, *(markdown_block(b) for b in blocks)]) + "\n"
    columns, header = csv_header(blocks)
    rows = [csv_row(block, row, columns) for block in blocks for row in block.rows]
    atomic_write_text(out / "table1.md", markdown)
    write_csv(out / "table1.csv", [header, *rows])
    return markdown

