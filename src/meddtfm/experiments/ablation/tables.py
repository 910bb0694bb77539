"""The ablation's tables: ``ablation.md`` (per dataset, one row per variant) and ``ablation.csv``.

Each cell is the mean ± std over training seeds (``report.summarize``). A cell is marked (``*`` in the
markdown, ``COLUMN_differs`` = yes in the csv) when its mean differs from the reference variant's by more
than twice the reference's std over seeds; with a single reference seed there is no std and no mark.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...files import atomic_write_text
from ..columns import Column, ceiling_lines, cell, resolved_columns, write_csv
from .preset import Variant

LABELS = ("FRD", "FID", "SSIM", "SSIM avg-K", "Dice")  # FID only when it is computed


@dataclass
class Row:
    """A variant on one dataset: ``summary`` over its training seeds, and per seed the budget it had."""

    variant: Variant
    seeds: list[int]
    summary: dict[str, dict[str, Any]]
    steps: list[int]
    images: list[int]
    seconds: list[float]  # those recorded (a reused run without a record has none)


@dataclass
class Block:
    """One dataset's table: its rows, which is the reference, the U-Net on the real images, what is missing."""

    dataset: str
    description: str
    rows: list[Row]
    reference: str | None  # the reference variant, None when it has no finished run
    ceiling: dict[str, float]
    missing: dict[str, str]  # metric -> why it was not computed
    notes: list[str]
    columns: list[Column]


def columns(average_of: int, computed: Sequence[str]) -> list[Column]:
    """The ablation's columns, FID only when computed."""
    return [c for c in resolved_columns(average_of, LABELS) if c[2] != "fid" or "fid" in computed]


def differs(block: Block, row: Row, key: str) -> bool | None:
    """Whether ``row``'s mean of ``key`` is more than 2 reference stds from the reference's (None: no test)."""
    ref = next((r for r in block.rows if r.variant.name == block.reference), None)
    if ref is None or ref is row:
        return None
    r, s = ref.summary.get(key), row.summary.get(key)
    if r is None or s is None or r["std"] is None or not (math.isfinite(r["mean"]) and math.isfinite(s["mean"])):
        return None
    return abs(s["mean"] - r["mean"]) > 2 * r["std"]


def _spread(values: Sequence[float], digits: int = 0) -> str:
    """The value of ``values`` when they agree at ``digits`` decimals, else ``min-max``; empty when there are none."""
    if not values:
        return ""
    lo, hi = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return lo if lo == hi else f"{lo}-{hi}"


def markdown_block(block: Block) -> str:
    """``## dataset``, its description, the table, the variants' definitions, the ceiling and notes."""
    head = "| Variant | " + " | ".join(f"{c[0]} {c[3]}" for c in block.columns) + " | seeds | images seen | steps " \
        "| train s |"
    lines = [f"## {block.dataset}", "", block.description, "", head, "|---" * (len(block.columns) + 5) + "|"]
    for row in block.rows:
        cells = [cell(row.summary, key, block.missing.get(metric))[0] + (" *" if differs(block, row, key) else "")
                 for _, key, metric, _ in block.columns]
        name = f"{row.variant.name} (reference)" if row.variant.name == block.reference else row.variant.name
        seconds = _spread(row.seconds, 1) if row.seconds else "n/a"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {' '.join(map(str, row.seeds))} | "
                     f"{_spread(row.images)} | {_spread(row.steps)} | {seconds} |")
    lines += ["", "Variants:", *(f"- `{r.variant.name}`: {r.variant.description or '(no description)'}; overrides: "
                                 + (", ".join(f"`{o}`" for o in r.variant.overrides) or "none (the base config)")
                                 for r in block.rows)]
    lines += [line for text in ceiling_lines(block.ceiling, "validation") for line in ("", text)]
    if block.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in block.notes)]
    return "\n".join(lines)


def csv_rows(block: Block) -> list[list[Any]]:
    """One csv row per variant: the columns' mean, std and differs, then the budget and the definition."""
    out = []
    for row in block.rows:
        values = []
        for _, key, metric, _ in block.columns:
            flag = differs(block, row, key)
            values += [*cell(row.summary, key, block.missing.get(metric))[1:], "" if flag is None else
                       ("yes" if flag else "no")]
        seconds = f"{sum(row.seconds) / len(row.seconds):.1f}" if row.seconds else ""
        out.append([block.dataset, row.variant.name, "yes" if row.variant.name == block.reference else "",
                    " ".join(map(str, row.seeds)), *values, f"{sum(row.images) / len(row.images):g}",
                    f"{sum(row.steps) / len(row.steps):g}", seconds, row.variant.description,
                    " ".join(row.variant.overrides)])
    return out


def write_tables(out: Path, blocks: Sequence[Block], preamble: Sequence[str]) -> str:
    """Write ``out/ablation.md`` and ``out/ablation.csv``; return the markdown."""
    markdown = "\n\n".join(["# Ablation (measured on the validation split)", *preamble,
                            *(markdown_block(b) for b in blocks)]) + "\n"
    cols = blocks[0].columns if blocks else []
    header = ["dataset", "variant", "reference", "seeds",
              *(h for c in cols for h in (c[0], f"{c[0]}_std", f"{c[0]}_differs")),
              "images_seen", "steps", "train_seconds", "description", "overrides"]
    atomic_write_text(out / "ablation.md", markdown)
    write_csv(out / "ablation.csv", [header, *(r for b in blocks for r in csv_rows(b))])
    return markdown
