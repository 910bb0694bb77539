from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from meddtfm.config import ConfigError, DataConfig
from meddtfm.data import BadSampleError, build_dataset, lgg
from meddtfm.data.lgg import LGGDataset

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lgg" / "kaggle_3m"
PATIENT_A, PATIENT_B = "TCGA_AA_0001_19990101", "TCGA_BB_0002_20000202"


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"name": "lgg", "root": str(root), "resolution": 64, "augment": False, **kw})


@pytest.fixture(scope="module")
def real_all(tmp_path_factory):
    """Every real slice; the flags cache goes to a temporary MEDDTFM_CACHE shared by this module's real-data tests."""
    if not REAL.is_dir():
        pytest.skip(f"real LGG data not found at {REAL}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDDTFM_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield LGGDataset(_cfg(REAL, slices="all"), "all")


def test_real_counts(real_all):
    assert len(real_all) == 1404 and len({r.subject_id for r in real_all.records}) == 85
    assert Counter(r.label for r in real_all.records) == {"tumour": 1064, "healthy": 340}
    assert len(LGGDataset(_cfg(REAL, slices="tumour"), "all")) == 1064
    assert len(LGGDataset(_cfg(REAL, slices="healthy"), "all")) == 340
    assert real_all.records[0].subject_id == "TCGA_CS_4941"


def test_real_samples(real_all):
    tumour = next(i for i, r in enumerate(real_all.records) if r.label == "tumour")
    healthy = next(i for i, r in enumerate(real_all.records) if r.label == "healthy")
    for index, has_lesion in ((tumour, True), (healthy, False)):
        s = real_all[index]
        assert s["image"].shape == (3, 64, 64) and -1 <= s["image"].min() < s["image"].max() <= 1
        assert s["mask"].shape == (1, 64, 64) and (s["mask"].sum() > 0) == has_lesion
        finding = "FLAIR abnormality" if has_lesion else "no FLAIR abnormality"
        assert s["caption"] == "brain MRI, lower-grade glioma, " + finding
    flair = LGGDataset(_cfg(REAL, slices="tumour", modalities=["flair"]), "all")
    s = flair[0]
    assert flair.channel_names == ("flair",) and s["image"].shape == (1, 64, 64)
    torch.testing.assert_close(s["image"][0], real_all[tumour]["image"][1])


def test_real_splits_are_disjoint_by_patient(real_all):
    cfg = _cfg(REAL, slices="tumour", val_fraction=0.15, test_fraction=0.15)
    subjects = {name: {r.subject_id for r in build_dataset(cfg, name).records} for name in ("train", "val", "test")}
    assert sum(len(s) for s in subjects.values()) == 85
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])


def _slice(folder: Path, n: int, kind: str, suffix: str) -> None:
    """Write slice ``n`` (40 x 40): "tumour", "healthy" (brain disk, empty mask) or "empty" (no brain)."""
    yy, xx = np.mgrid[:40, :40]
    brain = (yy - 20) ** 2 + (xx - 20) ** 2 < 15 ** 2
    image = np.zeros((40, 40, 3), np.uint8)
    if kind != "empty":
        image[brain] = (80, 150, 100)
    mask = np.zeros((40, 40), np.uint8)
    if kind == "tumour":
        mask[15:25, 15:25] = 255
    for array, name in ((image, f"{folder.name}_{n}"), (mask, f"{folder.name}_{n}_mask")):
        path = folder / f"{name}{suffix}"
        tifffile.imwrite(path, array) if suffix == ".tif" else Image.fromarray(array).save(path)


@pytest.fixture
def synthetic(tmp_path, monkeypatch) -> Path:
    """Patient A in PNG (tumour, healthy, empty slices 1-3), patient B in TIFF (tumour, healthy slices 1-2)."""
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "kaggle_3m"
    for patient, suffix, kinds in ((PATIENT_A, ".png", ("tumour", "healthy", "empty")),
                                   (PATIENT_B, ".tif", ("tumour", "healthy"))):
        (root / patient).mkdir(parents=True)
        for n, kind in enumerate(kinds, start=1):
            _slice(root / patient, n, kind, suffix)
    (root / "data.csv").write_text("Patient,gender\nTCGA_AA_0001,1\n")
    return root


def _path(root: Path, patient: str, n: int, mask: bool = False, suffix: str = ".png") -> Path:
    return root / patient / f"{patient}_{n}{'_mask' if mask else ''}{suffix}"


def test_slice_selection_png_and_tiff(synthetic):
    expected = {"tumour": 2, "healthy": 2, "brain": 4, "all": 5}
    for slices, count in expected.items():
        assert len(LGGDataset(_cfg(synthetic, slices=slices), "all")) == count
    ds = LGGDataset(_cfg(synthetic, slices="all", resolution=32), "all")
    assert [(r.subject_id, r.slice_index, r.label) for r in ds.records] == [
        ("TCGA_AA_0001", 1, "tumour"), ("TCGA_AA_0001", 2, "healthy"), ("TCGA_AA_0001", 3, "no brain"),
        ("TCGA_BB_0002", 1, "tumour"), ("TCGA_BB_0002", 2, "healthy")]
    tiff = ds[3]
    assert tiff["source"].endswith(".tif") and tiff["image"].shape == (3, 32, 32) and tiff["mask"].sum() > 0
    torch.testing.assert_close(tiff["image"][:, 16, 16], torch.tensor([80, 150, 100]) / 127.5 - 1)
    strict = LGGDataset(_cfg(synthetic, slices="brain", min_brain_fraction=0.5), "all")  # the disks cover 44%
    assert [r.label for r in strict.records] == ["tumour", "tumour"]


def test_modalities(synthetic):
    ds = LGGDataset(_cfg(synthetic, modalities=["post", "pre"]), "all")
    assert ds.channel_names == ("post", "pre")
    torch.testing.assert_close(ds[0]["image"][:, 32, 32], torch.tensor([100, 80]) / 127.5 - 1)
    with pytest.raises(ConfigError, match="unknown: \\['t1'\\]"):
        LGGDataset(_cfg(synthetic, modalities=["flair", "t1"]), "all")
    with pytest.raises(ConfigError, match="distinct"):
        LGGDataset(_cfg(synthetic, modalities=["flair", "flair"]), "all")


def test_flags_cache_is_reused_and_invalidated(synthetic, monkeypatch, tmp_path):
    before = sorted(p for p in synthetic.rglob("*"))
    LGGDataset(_cfg(synthetic), "all")
    assert len(list((tmp_path / "cache").glob("lgg-*.json"))) == 1
    assert sorted(p for p in synthetic.rglob("*")) == before, "nothing is written into the data root"
    with monkeypatch.context() as mp:
        mp.setattr(lgg, "slice_flags", lambda *a: pytest.fail("cache not used"))
        assert len(LGGDataset(_cfg(synthetic), "all")) == 2
    _slice(synthetic / PATIENT_A, 2, "tumour", ".png")  # the healthy slice gains a tumour
    assert len(LGGDataset(_cfg(synthetic), "all")) == 3


def test_unreadable_cache_is_recomputed(synthetic, tmp_path):
    LGGDataset(_cfg(synthetic), "all")
    (cache,) = (tmp_path / "cache").glob("lgg-*.json")
    cache.write_text("{not json")
    assert len(LGGDataset(_cfg(synthetic), "all")) == 2
    assert cache.read_text().startswith("{\"")


def test_missing_mask_raises_or_skips(synthetic):
    missing = _path(synthetic, PATIENT_A, 2, mask=True)
    missing.unlink()
    with pytest.raises(BadSampleError, match=f"{missing}: mask file is missing"):
        LGGDataset(_cfg(synthetic), "all")
    ds = LGGDataset(_cfg(synthetic, slices="all", on_bad_sample="skip"), "all")
    assert len(ds) == 4 and ds.skipped.reasons == {str(missing): "mask file is missing"}


def test_non_binary_mask_found_at_scan_even_when_cached(synthetic):
    bad = _path(synthetic, PATIENT_A, 1, mask=True)
    Image.fromarray(np.arange(1600, dtype=np.uint8).reshape(40, 40)).save(bad)
    with pytest.raises(BadSampleError, match=f"{bad}: mask is not binary"):
        LGGDataset(_cfg(synthetic), "all")
    for _ in range(2):  # computed, then from the cache
        ds = LGGDataset(_cfg(synthetic, on_bad_sample="skip"), "all")
        assert len(ds) == 1 and list(ds.skipped.reasons) == [str(bad)]


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
@pytest.mark.parametrize("n", [1, 2])  # tumour slice: found on access; healthy slice: found by the scan
def test_corrupt_or_truncated_png(synthetic, damage, n):
    path = _path(synthetic, PATIENT_A, n)
    data = path.read_bytes()
    path.write_bytes(b"\x89PNG garbage" * 10 if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(BadSampleError, match=f"{path}: cannot decode image"):
        LGGDataset(_cfg(synthetic, slices="all"), "all")[0]
    ds = LGGDataset(_cfg(synthetic, slices="all", on_bad_sample="skip"), "all")
    assert ds[0]["slice_index"] == (2 if n == 1 else 1)
    assert str(path) in ds.skipped.reasons


def test_mask_size_mismatch(synthetic):
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(_path(synthetic, PATIENT_A, 1, mask=True))
    with pytest.raises(BadSampleError, match=r"_1_mask\.png: mask size \(20, 20\) differs from image size \(40, 40\)"):
        LGGDataset(_cfg(synthetic), "all")[0]


def test_wrong_channel_count(synthetic):
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(_path(synthetic, PATIENT_A, 1))
    with pytest.raises(BadSampleError, match=r"has 1 channel\(s\), expected 3 \(pre, flair, post\)"):
        LGGDataset(_cfg(synthetic), "all")[0]
    tifffile.imwrite(_path(synthetic, PATIENT_B, 2, suffix=".tif"), np.zeros((40, 40, 4), np.uint8))
    with pytest.raises(BadSampleError, match=r"_2\.tif: has 4 channel\(s\), expected 3"):
        LGGDataset(_cfg(synthetic, slices="healthy"), "all")


def test_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty" / PATIENT_A).mkdir(parents=True)
    with pytest.raises(BadSampleError, match="no samples found"):
        LGGDataset(_cfg(tmp_path / "empty"), "all")
    with pytest.raises(BadSampleError, match="data root does not exist"):
        LGGDataset(_cfg(tmp_path / "nowhere"), "all")
