import dataclasses

import numpy as np
import pytest
import torch

from meddtfm.config import ConfigError, DataConfig
from meddtfm.data import build_dataset


def _cfg(**kw) -> DataConfig:
    return DataConfig(**{"phantom_count": 12, "resolution": 32, "augment": False, **kw})


def test_mri_sample_format():
    ds = build_dataset(_cfg(), "all")
    s = ds[0]
    assert s["image"].shape == (4, 32, 32) and s["mask"].shape == (3, 32, 32)
    assert s["image"].min() >= -1 and s["image"].max() <= 1
    assert set(s["mask"].unique().tolist()) <= {0.0, 1.0}
    assert s["mask"].sum(0).max() <= 1, "NCR / ED / ET are disjoint"
    assert s["mask"].sum() > 0 and bool(s["has_mask"])
    assert ds.channel_names == ("flair", "t1", "t1ce", "t2") and ds.class_names == ("NCR", "ED", "ET")


def test_deterministic_and_seeded():
    a = build_dataset(_cfg(), "all")[3]["image"]
    assert torch.equal(a, build_dataset(_cfg(), "all")[3]["image"])
    assert not torch.equal(a, build_dataset(_cfg(phantom_seed=1), "all")[3]["image"])


def test_healthy_slice_shares_anatomy_with_tumour_slice():
    ds = build_dataset(_cfg(slices="all"), "all")
    healthy, tumour = ds[0], ds[1]
    assert healthy["subject_id"] == tumour["subject_id"]
    assert healthy["mask"].sum() == 0 and tumour["mask"].sum() > 0
    outside = tumour["mask"].sum(0) == 0
    assert torch.allclose(healthy["image"][:, outside], tumour["image"][:, outside])
    assert not torch.allclose(healthy["image"], tumour["image"])


def test_tumour_is_bright_on_flair():
    s = build_dataset(_cfg(resolution=64), "all")[0]
    flair, edema = s["image"][0], s["mask"][1] > 0
    brain = (flair > -1) & ~s["mask"].bool().any(0)
    assert flair[edema].mean() > flair[brain].mean() + 0.3


def test_modalities_and_whole_tumour():
    ds = build_dataset(_cfg(modalities=["t2", "flair"], whole_tumour=True), "all")
    s = ds[0]
    assert s["image"].shape[0] == 2 and ds.class_names[-1] == "WT"
    assert torch.equal(s["mask"][3], s["mask"][:3].amax(0))
    with pytest.raises(ConfigError, match="unknown MRI phantom sequences"):
        build_dataset(_cfg(modalities=["dwi"]), "all")


def test_dermoscopy_captions_follow_diagnosis():
    ds = build_dataset(_cfg(phantom_kind="dermoscopy", phantom_count=40), "all")
    s = ds[0]
    assert s["image"].shape == (3, 32, 32) and s["mask"].shape == (1, 32, 32)
    assert s["caption"].startswith("dermoscopy, ")
    labels = {r.label for r in ds.records}
    assert labels <= {"melanoma", "melanocytic nevus", "benign keratosis"} and len(labels) >= 2
    assert all(r.label in r.caption for r in ds.records)


def test_augmentation_is_paired_and_reproducible():
    cfg = _cfg(augment=True, resolution=48)
    ds = build_dataset(cfg, "train", seed=5)
    plain = build_dataset(dataclasses.replace(cfg, augment=False), "train", seed=5)
    draws = [ds[i] for i in range(len(ds))]
    # Plain tensors, not MONAI MetaTensors (whose transform trace would slow every network op).
    assert all(type(d["image"]) is torch.Tensor and type(d["mask"]) is torch.Tensor for d in draws)
    assert any(not torch.equal(d["image"], p["image"]) for d, p in zip(draws, (plain[i] for i in range(len(ds)))))
    again = build_dataset(cfg, "train", seed=5)
    assert all(torch.equal(d["image"], again[i]["image"]) for i, d in enumerate(draws))
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["image"], draws[0]["image"]) or not torch.equal(ds[1]["image"], draws[1]["image"])
    for d in draws:  # the lesion moved with the image: FLAIR stays bright under the edema mask
        edema = d["mask"][1] > 0
        if edema.sum() > 4:
            assert d["image"][0][edema].mean() > d["image"][0][d["image"][0] > -1].mean()


def test_splits_are_subject_disjoint():
    cfg = _cfg(slices="all", val_fraction=0.25, test_fraction=0.25, phantom_count=20)
    subjects = {s: {r.subject_id for r in build_dataset(cfg, s).records} for s in ("train", "val", "test")}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert sum(map(len, subjects.values())) == 20
    assert np.all([len(v) > 0 for v in subjects.values()])
