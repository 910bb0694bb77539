"""PNG grids: images shown as a clinician expects (first MRI sequence in grey, RGB as is) with mask overlays."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .files import atomic_write

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


def save_sample_grid(real: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor, path: str | Path) -> Path:
    """Rows of mask over the real image | real | sample, from (B, C, H, W) images and (B, K, H, W) masks."""
    rows = [[overlay(r, m), to_rgb(r), to_rgb(x)] for r, m, x in zip(real.cpu(), masks.cpu(), samples.cpu())]
    return save_grid(rows, path)
