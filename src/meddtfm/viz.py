"""PNG grids: images shown as a clinician expects (first MRI sequence in grey, RGB as is) with mask overlays."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_write

MIN_TILE = 128  # px: smaller tiles are enlarged (nearest neighbour) in labelled grids
LABEL_H = 16  # px of the column labels' strip
CLASS_COLOURS = np.array([(230, 60, 60), (60, 200, 90), (70, 120, 240), (240, 200, 40), (200, 80, 220)], np.float32)


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """``C x H x W`` in [-1, 1] -> ``H x W x 3`` uint8: RGB when C == 3, else the first channel in grey."""
    img = image.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5)
    img = img if img.shape[0] == 3 else img[:1].expand(3, -1, -1)
    return img.permute(1, 2, 0).round().to(torch.uint8).numpy()


def mask_to_rgb(mask: torch.Tensor) -> np.ndarray:
    """One-hot ``K x H x W`` -> ``H x W x 3`` uint8 colour label map (black background)."""
    m = mask.detach().float().cpu().numpy()
    out = np.zeros(m.shape[1:] + (3,), np.float32)
    for k in range(m.shape[0]):
        out[m[k] > 0.5] = CLASS_COLOURS[k % len(CLASS_COLOURS)]
    return out.astype(np.uint8)


def overlay(image: torch.Tensor, mask: torch.Tensor, alpha: float = 0.4) -> np.ndarray:
    """``image`` (C x H x W) as RGB with each class of ``mask`` (K x H x W) blended in its colour."""
    rgb = to_rgb(image).astype(np.float32)
    colours = mask_to_rgb(mask).astype(np.float32)
    hit = (mask.detach().cpu() > 0.5).any(0).numpy()[..., None]
    return np.where(hit, (1 - alpha) * rgb + alpha * colours, rgb).astype(np.uint8)


def save_grid(tiles: Sequence[Sequence[np.ndarray]], path: str | Path, pad: int = 2) -> Path:
    """Write rows of equally sized ``H x W x 3`` uint8 tiles as one PNG (atomic: temp file, then rename)."""
    rows = [list(r) for r in tiles if len(r)]
    h, w, _ = rows[0][0].shape
    ncol = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            canvas[pad + i * (h + pad):pad + i * (h + pad) + h, pad + j * (w + pad):pad + j * (w + pad) + w] = tile
    return atomic_write(path, lambda tmp: Image.fromarray(canvas).save(tmp, format="PNG"))


def grid_columns(records: int, width: int) -> int:
    """How many records of ``width`` square tiles to put side by side so that the grid is nearest to square."""
    return min(range(1, records + 1), key=lambda c: (abs(math.log(c * width / math.ceil(records / c))), -c))


def save_labelled_grid(records: Sequence[Sequence[np.ndarray]], labels: Sequence[str], path: str | Path,
                       pad: int = 2) -> Path:
    """Write records (each a row of ``H x W x 3`` uint8 tiles, one per label) as one near-square PNG.

    Records sit side by side, ``grid_columns`` of them a row, each tile enlarged (nearest neighbour) to a
    square of side at least ``MIN_TILE``; a strip on top names each tile column by ``labels``.
    """
    records = [list(r) for r in records if len(r)]
    width = max(len(r) for r in records)
    tile = max(MIN_TILE, *(max(t.shape[:2]) for r in records for t in r))
    per_row = grid_columns(len(records), width)
    rows = math.ceil(len(records) / per_row)
    step, gap = tile + pad, 4 * pad  # gap: between records
    canvas = Image.new("RGB", (pad + per_row * width * step + (per_row - 1) * gap, LABEL_H + rows * step + pad),
                       "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for i, record in enumerate(records):
        x0, y = pad + (i % per_row) * (width * step + gap), LABEL_H + pad + (i // per_row) * step
        for j, t in enumerate(record):
            canvas.paste(Image.fromarray(t).resize((tile, tile), Image.NEAREST), (x0 + j * step, y))
            if i < per_row and j < len(labels):
                draw.text((x0 + j * step + 2, 2), labels[j], fill="black", font=font)
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def save_sample_grid(real: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor, path: str | Path) -> Path:
    """Records of mask over the real image | real | sample, from (B, C, H, W) images and (B, K, H, W) masks,
    laid out near square (``save_labelled_grid``)."""
    rows = [[overlay(r, m), to_rgb(r), to_rgb(x)] for r, m, x in zip(real.cpu(), masks.cpu(), samples.cpu())]
    return save_labelled_grid(rows, ["mask over real", "real", "sample"], path)
