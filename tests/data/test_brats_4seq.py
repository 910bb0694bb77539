"""The shipped BraTS config on real cases: four raw int16 sequences (``brats2021-4seq``), z-scored ones (``brats2021``).

The default suite reads two of the 12 four-sequence cases (``conftest.BRATS_4SEQ_CI_CASES``); the whole set only
in the tests marked slow (``pytest --slow``).
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from meddtfm.config import DataConfig, load_config
from meddtfm.data.brats import BraTSDataset
from meddtfm.data.brats_volumes import slice_to_image
from meddtfm.data.errors import BadSampleError

from ..conftest import BRATS_4SEQ_CI_CASES, shared_dataset

SEQUENCES = ("flair", "t1", "t1ce", "t2")


def shipped(root: Path, *overrides: str) -> DataConfig:
    """``configs/brats2021.yaml`` on ``root``, without augmentation."""
    return load_config("brats2021", [f"data.root={root}", "data.augment=false", *overrides]).data


def expected_slice(paths: tuple[str, ...], z: int, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Slice ``z`` normalised independently of the loader: brain = any sequence differs from its corner voxel
    (constant outside a skull-stripped head), each sequence clipped to ``percentiles`` of its brain voxels and
    mapped to [-1, 1], background -1; in the radiological view. ``C x H x W``."""
    volumes = [nib.load(p).get_fdata() for p in paths]
    brain = np.logical_or.reduce([v != v[0, 0, 0] for v in volumes])
    out = []
    for volume in volumes:
        lo, hi = np.percentile(volume[brain], percentiles)
        scaled = np.where(brain, np.clip((volume - lo) / (hi - lo), 0, 1) * 2 - 1, -1.0)
        out.append(slice_to_image(scaled[:, :, z], nib.aff2axcodes(nib.load(paths[0]).affine)))
    return np.stack(out)


def test_four_raw_int16_sequences_by_default_normalised_per_volume(brats_4seq_two: Path, shared_cache: Path) -> None:
    ds = BraTSDataset(shipped(brats_4seq_two, "data.resolution=240"), "all")
    assert ds.channel_names == SEQUENCES and ds.class_names == ("NCR", "ED", "ET")
    assert {r.subject_id for r in ds.records} == set(BRATS_4SEQ_CI_CASES)
    record = ds.records[len(ds) // 3]
    raw = nib.load(record.paths[0])
    assert raw.get_data_dtype() == np.int16 and raw.get_fdata().max() > 100  # not normalised on disk
    decoded = ds.decode(record)
    assert decoded.image.shape == (4, 240, 240) and decoded.mask.shape == (3, 240, 240) and decoded.mask.any()
    assert np.allclose(decoded.image, expected_slice(record.paths, record.slice_index), atol=1e-3)
    sample = BraTSDataset(shipped(brats_4seq_two, "data.resolution=64"), "all")[0]
    assert sample["image"].shape == (4, 64, 64) and sample["image"].min() == -1.0 and sample["image"].max() <= 1.0


def test_z_scored_cases_normalise_alike_and_a_missing_sequence_is_named(tmp_path: Path, shared_cache: Path) -> None:
    case = "BraTS2021_90001"
    (tmp_path / case).symlink_to(shared_dataset("brats2021") / case, target_is_directory=True)
    with pytest.raises(BadSampleError, match=rf"{case}/{case}_t1\.nii\.gz: case {case} has no t1 file"):
        BraTSDataset(shipped(tmp_path), "all")
    ds = BraTSDataset(shipped(tmp_path, "data.resolution=240", "data.modalities=[flair,t1ce]"), "all")
    record = ds.records[len(ds) // 2]
    assert nib.load(record.paths[0]).get_data_dtype() == np.float32 and ds.channel_names == ("flair", "t1ce")
    assert np.allclose(ds.decode(record).image, expected_slice(record.paths, record.slice_index), atol=1e-3)


def test_tumour_slices_for_training_healthy_slices_as_references(brats_4seq_two: Path, shared_cache: Path) -> None:
    tumour = BraTSDataset(shipped(brats_4seq_two, "data.resolution=64"), "all")
    healthy = BraTSDataset(shipped(brats_4seq_two, "data.resolution=64", "data.slices=healthy"), "all")
    assert {r.label for r in tumour.records} == {"tumour"} and {r.label for r in healthy.records} == {"healthy"}
    assert all(tumour.decode(r).mask.any() for r in tumour.records[::10])
    assert not any(healthy.decode(r).mask.any() for r in healthy.records[::10])
    assert {r.subject_id for r in healthy.records} == set(BRATS_4SEQ_CI_CASES)  # a reference in every case
    facts = tumour.describe()
    assert facts["slices_per_class"]["tumour"] == len(tumour) and facts["slices_per_class"]["healthy"] == len(healthy)


@pytest.mark.slow
def test_the_whole_set(shared_cache: Path) -> None:
    """All 12 cases: four int16 sequences each, every class somewhere, healthy references in every case, and the
    shipped split by case with two test cases. Decodes every volume once (about a minute)."""
    root = shared_dataset("brats2021-4seq")
    cfg = shipped(root, "data.resolution=64")
    splits = {s: BraTSDataset(cfg, s) for s in ("train", "val", "test")}
    cases = {s: {r.subject_id for r in ds.records} for s, ds in splits.items()}
    assert sum(map(len, cases.values())) == len(set.union(*cases.values())) == 12 and len(cases["test"]) >= 2
    whole = BraTSDataset(cfg, "all")
    facts = whole.describe()
    assert facts["cases"] == 12 and all(facts["native_intensity"][s]["dtype"] == "int16" for s in SEQUENCES)
    assert all(facts["slices_per_class"][c] > 0 for c in ("NCR", "ED", "ET"))
    healthy = BraTSDataset(shipped(root, "data.resolution=64", "data.slices=healthy"), "all")
    assert {r.subject_id for r in healthy.records} == set.union(*cases.values())
    for case in sorted(set.union(*cases.values())):
        record = next(r for r in whole.records if r.subject_id == case)
        image = whole[whole.records.index(record)]["image"]
        assert image.shape == (4, 64, 64) and (image > -1).float().mean() > 0.05, case
