"""Labelled grids: near square, small tiles enlarged, columns named."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from meddtfm.viz import LABEL_H, MIN_TILE, grid_columns, save_labelled_grid


@pytest.mark.parametrize(("records", "width", "per_row"), [(1, 3, 1), (8, 3, 2), (32, 2, 4), (32, 3, 3), (5, 1, 3)])
def test_records_are_laid_out_near_square(records: int, width: int, per_row: int) -> None:
    assert grid_columns(records, width) == per_row


def test_tiles_are_enlarged_and_labelled(tmp_path):
    tiles = [[np.full((32, 32, 3), 40 * i, np.uint8), np.full((32, 32, 3), 200, np.uint8)] for i in range(6)]
    path = save_labelled_grid(tiles, ["mask over sample", "sample", "unused"], tmp_path / "g.png")
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"))
    per_row = grid_columns(6, 2)  # 2 records (4 tiles) a row, 3 rows
    assert per_row == 2 and pixels.shape[0] == LABEL_H + 3 * (MIN_TILE + 2) + 2
    assert pixels.shape[1] == 2 + per_row * 2 * (MIN_TILE + 2) + (per_row - 1) * 8
    assert (pixels[:LABEL_H] < 128).any(), "the label strip has text"
    first = pixels[LABEL_H + 2:LABEL_H + 2 + MIN_TILE, 2 + MIN_TILE + 2:2 + 2 * MIN_TILE + 2]
    assert (first == 200).all(), "a 32 px tile fills a 128 px square (nearest)"
