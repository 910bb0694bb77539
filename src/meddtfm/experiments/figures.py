"""Figures of the studies, drawn with PIL only: labelled image grids (Table 1's Fig. 2), line plots, bar charts."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..files import atomic_write

PAD = 2  # px between tiles
LABEL_H = 16  # px of a text strip (column labels, dataset name)
MIN_TILE = 128  # small images are enlarged (nearest neighbour) so that the labels fit
GridRow = tuple[str, list[np.ndarray]]  # a grid row: its label ("" for none) and its H x W x 3 uint8 tiles
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # matplotlib's tab10


def _save(image: Image.Image, path: Path) -> Path:
    """Write ``image`` to ``path`` as a PNG, atomically."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def row_label_width(labels: Sequence[str], font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    """px of the strip left of the tiles that holds the rows' labels: 0 when every label is empty."""
    return PAD + 4 + math.ceil(max(font.getlength(label) for label in labels)) if any(labels) else 0


def grid_size(columns: int, rows: int, groups: int, tile: int, label_width: int = 0) -> tuple[int, int]:
    """(width, height) of ``labelled_grid``'s PNG, ``label_width`` that of its row labels' strip."""
    return label_width + columns * (tile + PAD) + PAD, LABEL_H * (1 + groups) + rows * (tile + PAD) + PAD


def labelled_grid(columns: Sequence[str], groups: dict[str, list[GridRow]], path: Path) -> Path:
    """One PNG: a strip of column labels, then per group its name and rows of ``H x W x 3`` uint8 tiles, each row's
    label (e.g. the MRI sequence shown) left of it.

    Tiles are resized to one square size: the largest tile side, at least ``MIN_TILE``.
    """
    rows = [row for group in groups.values() for row in group]
    tile = max(MIN_TILE, *(max(t.shape[:2]) for _, tiles in rows for t in tiles))
    font = ImageFont.load_default()
    left = row_label_width([label for label, _ in rows], font)
    canvas = Image.new("RGB", grid_size(len(columns), len(rows), len(groups), tile, left), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(columns):
        draw.text((left + PAD + j * (tile + PAD) + 2, 2), name, fill="black", font=font)
    y = LABEL_H
    for group, group_rows in groups.items():
        draw.text((PAD + 2, y + 2), group, fill=(90, 90, 90), font=font)
        y += LABEL_H
        for label, tiles in group_rows:
            draw.text((PAD + 2, y + PAD + tile // 2 - 6), label, fill="black", font=font)
            for j, t in enumerate(tiles):
                img = Image.fromarray(t).resize((tile, tile), Image.NEAREST)
                canvas.paste(img, (left + PAD + j * (tile + PAD), y + PAD))
            y += tile + PAD
    return _save(canvas, path)


def _ticks(lo: float, hi: float, n: int = 5) -> list[str]:
    """About ``n`` round tick values in [lo, hi] (``hi > lo``), as labels with the decimals their spacing needs."""
    raw = (hi - lo) / n
    power = math.floor(math.log10(raw))
    step = next(m for m in (1, 2, 5, 10) if m * 10 ** power >= raw) * 10 ** power
    decimals = max(0, -math.floor(math.log10(step)))
    return [f"{k * step:.{decimals}f}" for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def line_plot(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, title: str,
              size: tuple[int, int] = (720, 440)) -> Image.Image:
    """Lines with markers, one per series of (x, y) points (non-finite y dropped), axes with ticks and a legend."""
    points = {k: [(x, y) for x, y in v if math.isfinite(y)] for k, v in series.items()}
    xs = [x for v in points.values() for x, _ in v] or [0.0, 1.0]
    ys = [y for v in points.values() for _, y in v] or [0.0, 1.0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    margin = (max(ys) - min(ys)) * 0.05 or abs(ys[0]) * 0.05 or 1.0
    y0, y1 = min(ys) - margin, max(ys) + margin
    w, h = size
    left, right, top, bottom = 80, w - 20, 40, h - 60
    canvas = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline="black")
    for label in _ticks(x0, x1):
        x = px(float(label), y0)[0]
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        draw.text((x - 10, bottom + 6), label, fill="black", font=font)
    for label in _ticks(y0, y1):
        y = px(x0, float(label))[1]
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((4, y - 6), label, fill="black", font=font)
    draw.text((left, 12), title, fill="black", font=font)
    draw.text(((left + right) // 2 - 3 * len(xlabel), bottom + 26), xlabel, fill="black", font=font)
    draw.text((4, top - 16), ylabel, fill="black", font=font)
    for i, (name, v) in enumerate(points.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [px(x, y) for x, y in v]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for cx, cy in xy:
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
        draw.line([(right - 150, top + 12 + 16 * i), (right - 126, top + 12 + 16 * i)], fill=colour, width=3)
        draw.text((right - 120, top + 6 + 16 * i), name, fill="black", font=font)
    return canvas


def bar_chart(bars: dict[str, tuple[float, float | None]], ylabel: str, title: str,
              size: tuple[int, int] = (720, 360)) -> Image.Image:
    """One bar per label at its mean, with an error bar of ± its std (None: no bar); non-finite means left empty.

    The y axis starts at 0 (or below the lowest bar when one is negative); colours follow ``line_plot``'s order.
    """
    finite = {k: (m, s or 0.0) for k, (m, s) in bars.items() if math.isfinite(m)}
    lo = min([0.0, *(m - s for m, s in finite.values())])
    hi = max([lo + 1e-9, *(m + s for m, s in finite.values())])
    y0, y1 = lo - (0.05 * (hi - lo) if lo < 0 else 0.0), hi + 0.08 * (hi - lo)
    w, h = size
    left, right, top, bottom = 80, w - 20, 40, h - 40
    canvas = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline="black")
    for label in _ticks(y0, y1):
        y = py(float(label))
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((4, y - 6), label, fill="black", font=font)
    draw.text((left, 12), title, fill="black", font=font)
    draw.text((4, top - 16), ylabel, fill="black", font=font)
    slot = (right - left) / max(len(bars), 1)
    for i, (name, (mean, std)) in enumerate(bars.items()):
        x0, x1 = left + i * slot + 0.2 * slot, left + (i + 0.8) * slot
        xc = (x0 + x1) / 2
        draw.text((xc - 3 * len(name), bottom + 6), name, fill="black", font=font)
        if not math.isfinite(mean):
            continue
        draw.rectangle([x0, min(py(mean), py(0.0)), x1, max(py(mean), py(0.0))], fill=COLOURS[i % len(COLOURS)])
        if std:
            draw.line([(xc, py(mean - std)), (xc, py(mean + std))], fill="black", width=2)
            for y in (mean - std, mean + std):
                draw.line([(xc - 6, py(y)), (xc + 6, py(y))], fill="black", width=2)
    return canvas


def save_column(images: Sequence[Image.Image], path: Path) -> Path:
    """Stack images top to bottom into one PNG."""
    canvas = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for image in images:
        canvas.paste(image, (0, y))
        y += image.height
    return _save(canvas, path)
