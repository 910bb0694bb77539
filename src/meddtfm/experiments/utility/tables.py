"""``utility.md`` and ``utility.csv``: per dataset, one row per arm (and generator), mean ± std over U-Net seeds.

Columns: lesion-present Dice and HD95 (px) of the U-Net on the real test split, and the Dice difference
to the arm it is compared with (``real`` for real+1x, real+2x and synthetic; ``low`` for low+synthetic),
marked ``*`` when larger than twice that arm's seed std. On BraTS also the Dice of the whole tumour, tumour
core and enhancing tumour regions (``evaluation.regions``), as BraTS papers report them.
"""
from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

from ...evaluation.report import format_number
from ...files import atomic_write, atomic_write_text
from ..budget import images_seen
from .plan import Plan
from .preset import Preset

BASELINE_OF = {"real+1x": "real", "real+2x": "real", "synthetic": "real", "low+synthetic": "low"}
REGIONS = ("wt", "tc", "et")


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std (None for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _cell(mean: float, std: float | None) -> str:
    return format_number(mean) + ("" if std is None else f" ± {format_number(std)}")


def _rows(plan: Plan, scores: dict[str, list[dict]]) -> list[dict]:
    rows, real = [], {}
    for arm in plan.arms:
        runs = scores[arm.label]
        dice, hd95 = mean_std([s["dice_present/mean"] for s in runs]), mean_std([s["hd95/mean"] for s in runs])
        row = {"dataset": plan.name, "arm": arm.name, "generator": arm.generator or "", "dice": dice, "hd95": hd95,
               "seeds": [k for k in arm.runs], "images": int(runs[0]["images"]),
               "regions": {r: mean_std([s[f"dice_{r}/mean"] for s in runs]) for r in REGIONS
                           if f"dice_{r}/mean" in runs[0]}}
        if arm.generator is None:
            real[arm.name] = row
        rows.append(row)
    for row in rows:
        base = real.get(BASELINE_OF.get(row["arm"], ""))
        row["delta"], row["marked"] = None, False
        if base is not None:
            row["delta"] = row["dice"][0] - base["dice"][0]
            row["marked"] = base["dice"][1] is not None and abs(row["delta"]) > 2 * base["dice"][1]
    return rows


def write_tables(out: Path, preset: Preset, plans: Sequence[Plan], scores: dict[str, dict[str, list[dict]]],
                 name: str) -> str:
    """Write ``utility.md`` and ``utility.csv``; return the markdown."""
    s = preset.synthetic
    lines = [f"# Downstream utility of synthetic images ({name} preset)", "",
             "Written by `meddtfm reproduce utility`. Each arm trains the same MONAI U-Net with the same budget "
             f"(U-Net seeds {', '.join(map(str, preset.seeds))}; weights chosen by Dice on the real validation "
             "split) and is scored on the **real test split**: lesion-present Dice and HD95 in px (an empty "
             "prediction of a present lesion scores the image diagonal), mean ± std over seeds. Synthetic sets: "
             f"`meddtfm augment` with {s.solver}, NFE {s.nfe}, guidance {s.cfg:g}, masks of the arm's real "
             f"training subjects varied by `{s.vary}`; 1x = as many images as real training masks. Low-data arms "
             f"keep {preset.low_fraction:g} of the training subjects; their generator (and its teacher) trained on "
             f"those subjects only, and draws {preset.low_multiple:g}x their masks. Δ Dice: against `real` "
             "(against `low` for low+synthetic); `*` marks a Δ larger than twice that arm's seed std.", ""]
    table = [["dataset", "arm", "generator", "dice", "dice_std", "hd95", "hd95_std", "delta_dice", "marked",
              "seeds", "test_images", "unet_images_seen", *(f"dice_{r}{x}" for r in REGIONS for x in ("", "_std"))]]
    for plan in plans:
        rows = _rows(plan, scores[plan.name])
        budget = images_seen(plan.data)
        brats = bool(rows[0]["regions"])
        lines += [f"## {plan.name}", "", f"U-Net budget: {budget} images seen per arm.", "",
                  "| Arm | Generator | Dice ↑ | HD95 ↓ | Δ Dice |" + (" Dice WT / TC / ET ↑ |" if brats else "")
                  + " seeds |", "|---|---|---|---|---|" + ("---|" if brats else "") + "---|"]
        for r in rows:
            delta = "" if r["delta"] is None else f"{r['delta']:+.4f}" + (" *" if r["marked"] else "")
            regions = " / ".join(_cell(*r["regions"][k]) for k in REGIONS) + " | " if brats else ""
            lines.append(f"| {r['arm']} | {r['generator'] or '-'} | {_cell(*r['dice'])} | {_cell(*r['hd95'])} | "
                         f"{delta} | {regions}{' '.join(map(str, r['seeds']))} |")
            table.append([r["dataset"], r["arm"], r["generator"], r["dice"][0], r["dice"][1] or "", r["hd95"][0],
                          r["hd95"][1] or "", "" if r["delta"] is None else r["delta"], "yes" if r["marked"] else "",
                          " ".join(map(str, r["seeds"])), r["images"], budget,
                          *(v or "" for k in REGIONS for v in r["regions"].get(k, (None, None)))])
        lines.append("")
    text = "\n".join(lines)
    atomic_write_text(out / "utility.md", text)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(table)

    atomic_write(out / "utility.csv", write)
    return text
