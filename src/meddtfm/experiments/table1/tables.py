"""Table 1's files: ``table1.md`` (one block per dataset, rows as in the paper) and ``table1.csv``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...evaluation.report import format_number
from ...files import atomic_write_text
from ..columns import cell, resolved_columns, write_csv
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


def markdown_block(block: Block) -> str:
    """``## dataset`` and its table: one row per method, the columns of ``resolved_columns``."""
    columns = resolved_columns(block.average_of)
    head = "| Method | " + " | ".join(f"{c[0]} {c[3]}" for c in columns) + " |"
    lines = [f"## {block.dataset}", "", block.description, "", head, "|---" * (len(columns) + 1) + "|"]
    for row in block.rows:
        cells = [cell(row.summary, key, block.missing.get(metric))[0] for _, key, metric, _ in columns]
        lines.append(f"| {row.method.label} | " + " | ".join(cells) + " |")
    if "dice_present/mean" in block.reference:
        ceiling = format_number(block.reference["dice_present/mean"])
        lines += ["", f"Dice (lesion-present classes) of the same U-Net on the real {block.split} images (the "
                      f"ceiling): {ceiling}."]
    trained = "; ".join(f"{r.method.label} {r.steps} steps = {r.images} images"
                        + (f" in {r.seconds:.1f} s" if r.seconds is not None else "") for r in block.rows)
    lines += ["", f"Trained: {trained}."]
    if block.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in block.notes)]
    return "\n".join(lines)


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
                      for v in cell(row.summary, key, block.missing.get(metric))[1:]]
            seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
            rows.append([block.dataset, row.method.label, *values, row.steps, row.images, seconds])
    atomic_write_text(out / "table1.md", markdown)
    write_csv(out / "table1.csv", [header, *rows])
    return markdown

