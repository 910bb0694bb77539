"""Fig. 2's rows (``compare.side_by_side``) and their grid: every sequence of a multi-channel MRI case, labelled."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageFont

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.experiments.compare import Scorer, side_by_side
from meddtfm.experiments.figures import LABEL_H, MIN_TILE, PAD, grid_size, labelled_grid, row_label_width
from meddtfm.experiments.presets import EvalSpec
from meddtfm.viz import mask_to_rgb


def _scorer(tmp_path, monkeypatch, *overrides: str) -> Scorer:
    """Phantoms at 16 px; each "generator" paints channel c with the value ``(c + 1) / 10 - offset``."""
    cfg = load_config("phantoms", ["data.phantom_count=8", "data.resolution=16", *overrides])
    scorer = Scorer(build_dataset(cfg.data, "all"), EvalSpec(), ("paired",), torch.device("cpu"), tmp_path)

    def generator(self, path):
        offset = float(path.name)

        def generate(batch, seed):
            b, c, h, w = batch["image"].shape
            return (torch.arange(1, c + 1).float() / 10 - offset).view(1, c, 1, 1).expand(b, c, h, w)
        return generate, {}

    monkeypatch.setattr(Scorer, "generator", generator)
    return scorer


def test_a_four_sequence_case_gives_one_labelled_row_per_sequence(tmp_path, monkeypatch):
    scorer = _scorer(tmp_path, monkeypatch)
    assert scorer.dataset.channel_names == ("flair", "t1", "t1ce", "t2")
    rows = side_by_side(scorer, {"a": tmp_path / "0", "b": tmp_path / "0.5"}, 2, 0)
    assert [label for label, _ in rows] == ["FLAIR", "T1", "T1ce", "T2"] * 2
    first = next(s for s in (scorer.dataset[i] for i in range(len(scorer.dataset))) if s["mask"].any())
    for c, (_, tiles) in enumerate(rows[:4]):
        assert len(tiles) == 3 and np.array_equal(tiles[0], mask_to_rgb(first["mask"]))
        for tile, offset in zip(tiles[1:], (0, 0.5)):  # channel c in grey: round(((c+1)/10 - offset + 1) * 127.5)
            assert tile.shape == (16, 16, 3) and np.all(tile == round(((c + 1) / 10 - offset + 1) * 127.5))


@pytest.mark.parametrize("overrides", [["data.modalities=[flair]"], ["data.phantom_kind=dermoscopy"]])
def test_a_one_channel_or_rgb_case_gives_one_unlabelled_row(tmp_path, monkeypatch, overrides):
    scorer = _scorer(tmp_path, monkeypatch, *overrides)
    rows = side_by_side(scorer, {"a": tmp_path / "0"}, 3, 0)
    assert [label for label, _ in rows] == ["", "", ""] and all(len(tiles) == 2 for _, tiles in rows)
    channels = scorer.dataset.num_channels
    expected = [round(((c + 1) / 10 + 1) * 127.5) for c in range(channels)] if channels == 3 else [140] * 3
    assert rows[0][1][1][0, 0].tolist() == expected


def test_the_grid_puts_the_row_labels_left_of_the_tiles(tmp_path):
    tile = np.full((16, 16, 3), 200, np.uint8)
    labelled = {"brats": [(s, [tile, tile]) for s in ("FLAIR", "T1ce")], "isic": [("", [tile, tile])]}
    width = row_label_width(["FLAIR", "T1ce", ""], ImageFont.load_default())
    assert width > PAD
    with Image.open(labelled_grid(["mask", "ours"], labelled, tmp_path / "a.png")) as img:
        assert img.size == grid_size(2, 3, 2, MIN_TILE, width)
        pixels = np.asarray(img.convert("RGB"))
    y = 2 * LABEL_H + PAD
    assert np.all(pixels[y:y + MIN_TILE, width + PAD:width + PAD + MIN_TILE] == 200)
    assert (pixels[y:y + MIN_TILE, :width] < 128).any(), "the label is written in the strip"
    with Image.open(labelled_grid(["mask", "ours"], {"lgg": [("", [tile, tile])]}, tmp_path / "b.png")) as img:
        assert img.size == grid_size(2, 1, 1, MIN_TILE), "no strip when no row has a label"
