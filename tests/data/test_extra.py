"""``data.train_fraction`` and ``data.extra_train``: the training split alone shrinks or grows."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meddtfm.config import ConfigError, DataConfig
from meddtfm.data import BadSampleError, build_dataset

BASE = dict(phantom_count=40, val_fraction=0.2, test_fraction=0.2, resolution=16, modalities=["flair"])


def _folder(root: Path, count: int, mode: str = "L", classes: bool = True) -> str:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        shape = (16, 16) if mode == "L" else (16, 16, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:8, 4:9] = 1 + i % 3
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    if classes:
        (root / "classes.txt").write_text("1 NCR\n2 ED\n3 ET\n")
    return str(root)


def _subjects(cfg: DataConfig, split: str) -> set[str]:
    return {r.subject_id for r in build_dataset(cfg, split).records}


def test_train_fraction_keeps_a_nested_subset_of_training_subjects_only():
    full = DataConfig(**BASE)
    ten, half = DataConfig(**BASE, train_fraction=0.1), DataConfig(**BASE, train_fraction=0.5)
    train = _subjects(full, "train")
    assert len(_subjects(ten, "train")) == int(np.ceil(0.1 * len(train)))
    assert _subjects(ten, "train") < _subjects(half, "train") < train
    for split in ("val", "test"):
        assert _subjects(ten, split) == _subjects(full, split)


def test_extra_train_folders_join_the_training_split_and_decode_as_folders(tmp_path):
    extra = _folder(tmp_path / "syn", 5)
    real = build_dataset(DataConfig(**BASE), "train")
    both = build_dataset(DataConfig(**BASE, extra_train=[extra]), "train")
    assert len(both) == len(real) + 5 and both.records[-1].sample_id == "extra1/s4"
    sample = both[len(both) - 1]
    assert sample["image"].shape == (1, 16, 16) and sample["mask"][1].sum() == 20, "s4's label 2 is ED"
    assert len(build_dataset(DataConfig(**BASE, extra_train=[extra]), "val")) == len(build_dataset(DataConfig(**BASE),
                                                                                                  "val"))
    only = build_dataset(DataConfig(**BASE, train_fraction=0.0, extra_train=[extra]), "train")
    assert [r.origin for r in only.records] == [1] * 5


def test_a_folder_that_does_not_fit_is_named(tmp_path):
    rgb = _folder(tmp_path / "rgb", 2, mode="RGB")
    with pytest.raises(BadSampleError, match="rgb.*3 channels"):
        build_dataset(DataConfig(**BASE, extra_train=[rgb]), "train")
    one_class = _folder(tmp_path / "binary", 2, classes=False)
    with pytest.raises(BadSampleError, match="classes \\['lesion'\\]"):
        build_dataset(DataConfig(**BASE, extra_train=[one_class]), "train")
    with pytest.raises(ConfigError, match="train_fraction=0.0 must lie in"):
        DataConfig(**BASE, train_fraction=0.0)
