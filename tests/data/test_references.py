"""References for training the reference path: another image of the same subject, never the sample itself."""
from collections import Counter

import pytest
import torch

from meddtfm.config import ConfigError, DataConfig
from meddtfm.data import build_dataset
from meddtfm.data.base import Record
from meddtfm.data.references import attach_references, choose_references

from ..conftest import shared_dataset


def _record(subject: str, z: int, label: str) -> Record:
    return Record(sample_id=f"{subject}_s{z}", subject_id=subject, paths=("x",), slice_index=z, label=label)


def test_choice_prefers_healthy_then_nearest_and_never_the_sample_itself():
    a3, a4, a9, a1 = (_record("a", 3, "tumour"), _record("a", 4, "tumour"), _record("a", 9, "healthy"),
                      _record("a", 1, "healthy"))
    alone = _record("b", 0, "tumour")
    chosen = choose_references([a3, a4, alone], [a4, a3, a9, a1, alone, a3])
    assert chosen[a3.sample_id] is a1 and chosen[a4.sample_id] is a1  # healthy, nearest
    assert chosen[alone.sample_id] is None
    only_tumour = choose_references([a3, a4], [a3, a4])
    assert only_tumour[a3.sample_id] is a4 and only_tumour[a4.sample_id] is a3


def test_phantom_training_samples_get_the_healthy_slice_of_their_subject():
    cfg = DataConfig(name="phantoms", phantom_count=12, resolution=32, slices="tumour", augment=False)
    train = build_dataset(cfg, "train")
    attach_references(train, "other_slice")
    healthy = build_dataset(DataConfig(**{**cfg.__dict__, "slices": "healthy"}), "train")
    for i in range(len(train)):
        sample = train[i]
        assert sample["has_reference"] and sample["reference_id"] != sample["sample_id"]
        assert sample["reference_id"] == f"{sample['subject_id']}_s0"
        j = next(k for k, r in enumerate(healthy.records) if r.sample_id == sample["reference_id"])
        assert torch.equal(sample["reference"], healthy[j]["image"])
        assert not torch.equal(sample["reference"], sample["image"])


def test_source_must_fit_the_dataset():
    derm = build_dataset(DataConfig(name="phantoms", phantom_kind="dermoscopy", phantom_count=8, resolution=32))
    with pytest.raises(ConfigError, match="same_lesion"):
        attach_references(derm, "other_slice")
    refs = attach_references(derm, "same_lesion")  # one image per phantom lesion: none has a reference
    assert not any(refs.chosen.values()) and not derm[0]["has_reference"]
    mri = build_dataset(DataConfig(name="phantoms", phantom_count=8, resolution=32))
    with pytest.raises(ConfigError, match="other_slice"):
        attach_references(mri, "same_lesion")


def test_real_lgg_references_are_other_slices_of_the_same_patient(tmp_path, monkeypatch):
    root = shared_dataset("lgg/kaggle_3m")
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path))
    cfg = DataConfig(name="lgg", root=str(root), resolution=32, slices="tumour", augment=False)
    train = build_dataset(cfg, "train")
    chosen = attach_references(train, "other_slice").chosen
    got = [(t, chosen[t.sample_id]) for t in train.records if chosen[t.sample_id] is not None]
    assert len(got) > 0.9 * len(train)
    assert all(r.sample_id != t.sample_id and r.subject_id == t.subject_id for t, r in got)
    assert Counter(r.label for _, r in got)["healthy"] > 0.5 * len(got)
    sample = train[0]
    assert sample["reference_id"] != sample["sample_id"] and sample["reference"].shape == sample["image"].shape
