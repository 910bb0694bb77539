"""BraTS 2021 loader: real shared cases (skipped when absent) and small synthetic volumes for bad inputs."""
from __future__ import annotations

import gzip
import logging
import os
import pickle
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from meddtfm.config import DataConfig
from meddtfm.data import brats_volumes
from meddtfm.data.brats import BraTSDataset
from meddtfm.data.brats_volumes import image_to_slice, slice_to_image
from meddtfm.data.errors import BadSampleError

SHARED = Path(__file__).parents[2] / ".." / "shared" / "data" / "brats2021"
CASES = ("BraTS2021_90001", "BraTS2021_90002", "BraTS2021_90003", "BraTS2021_90004")
LPS = np.array([[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]], float)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared BraTS data not found at {SHARED}")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One index cache for the session, never ~/.cache."""
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path_factory.getbasetemp() / "index-cache"))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the NIfTI files the loader decodes from now on."""
    seen: list[str] = []
    real = brats_volumes.read_nifti

    def counting(path):  # noqa: ANN001, ANN202
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(brats_volumes, "read_nifti", counting)
    return seen


def cfg(root: Path, **kw) -> DataConfig:  # noqa: ANN003
    kw = {"resolution": 32, "augment": False, "val_fraction": 0.0, **kw}
    return DataConfig(name="brats2021", root=str(root), **kw)


def write_case(root: Path, case: str, kinds: tuple[str, ...] = ("flair", "t1ce"), raw: bool = False,
               seg: np.ndarray | None = None, shape: tuple[int, int, int] = (32, 32, 8),
               background: float = -3.5) -> Path:
    """A 32x32x8 head: brain ellipse in slices 1-6, tumour (labels 1, 2, 4) in slices 3-4.

    Sequences are z-scored (standard normal brain, constant ``background``) or, with ``raw``, uint16.
    """
    folder = root / case
    folder.mkdir(parents=True)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    brain = np.zeros(shape, bool)
    brain[:, :, 1:7] = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1)[:, :, None]
    rng = np.random.default_rng(len(case))
    for kind in kinds:
        if raw:
            vol = np.where(brain, rng.integers(200, 3000, shape), 0).astype(np.uint16)
        else:
            vol = np.where(brain, rng.standard_normal(shape), background).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, LPS), folder / f"{case}_{kind}.nii.gz")
    if seg is None:
        seg = np.zeros(shape, np.uint8)
        r = np.hypot(x - 0.2, y)
        for z in (3, 4):
            seg[:, :, z] = np.select([r < 0.1, r < 0.2, r < 0.35], [1, 4, 2], 0)
    nib.save(nib.Nifti1Image(seg, LPS), folder / f"{case}_seg.nii.gz")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        write_case(tmp_path / "data", case)
    return tmp_path / "data"


# ---------------------------------------------------------------- real data

@needs_shared
def test_real_slice_counts_per_case() -> None:
    counts = {mode: BraTSDataset(cfg(SHARED, slices=mode), "all").case_info for mode in ("tumour", "brain", "all")}
    for case in CASES:
        info = counts["brain"][case]
        assert 60 <= info["tumour"] <= 100 and 20 <= info["healthy"] <= 80
        assert info["healthy"] < info["brain"] <= info["tumour"] + info["healthy"] < 155
        assert counts["tumour"][case]["selected"] == info["tumour"]
        assert counts["all"][case]["selected"] == 155
    healthy = BraTSDataset(cfg(SHARED, slices="healthy"), "all")
    assert {r.label for r in healthy.records} == {"healthy"} and len(healthy) == sum(
        counts["brain"][c]["healthy"] for c in CASES)


@needs_shared
def test_real_samples_at_64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path))
    ds = BraTSDataset(cfg(SHARED, resolution=64, whole_tumour=True, volume_cache=2), "all")
    reads.clear()
    assert ds.channel_names == ("flair", "t1ce") and ds.class_names == ("NCR", "ED", "ET", "WT")
    for index in (0, len(ds) // 2, len(ds) // 2 + 1):
        sample = ds[index]
        image, mask = sample["image"].numpy(), sample["mask"].numpy()
        assert image.shape == (2, 64, 64) and image.dtype == np.float32
        assert image.min() == -1.0 and image.max() <= 1.0 and (image > -1).mean() > 0.05
        assert mask.shape == (4, 64, 64) and set(np.unique(mask)) <= {0.0, 1.0}
        assert mask[:3].sum(0).max() <= 1.0 and np.array_equal(mask[3], mask[:3].max(0))
        assert index == 0 or mask[3].sum() > 0  # the first tumour slice's lesion may vanish at 64 px
        assert sample["sample_id"] == f"{sample['subject_id']}_s{sample['slice_index']:03d}"
        assert sample["caption"].startswith("brain MRI, ")
    assert len(reads) == 6  # two cases, three files each, decoded once
    worker = pickle.loads(pickle.dumps(ds))  # a fresh worker maps the slice cache instead of decoding
    assert np.array_equal(worker[len(ds) // 2]["image"], ds[len(ds) // 2]["image"]) and len(reads) == 6


@needs_shared
def test_real_modality_choice() -> None:
    both = BraTSDataset(cfg(SHARED, modalities=["t1ce", "flair"], slices="tumour"), "all")
    flair = BraTSDataset(cfg(SHARED, modalities=["flair"], slices="tumour"), "all")
    assert both.channel_names == ("flair", "t1ce") and flair.channel_names == ("flair",)
    assert np.array_equal(both[5]["image"][0], flair[5]["image"][0])
    with pytest.raises(BadSampleError, match=r"BraTS2021_9000\d_t1\.nii\.gz.*has no t1 file"):
        BraTSDataset(cfg(SHARED, modalities=["flair", "t1"]), "all")
    with pytest.raises(ValueError, match="flair, t1, t1ce, t2"):
        BraTSDataset(cfg(SHARED, modalities=["dwi"]), "all")


@needs_shared
def test_real_split_is_by_case() -> None:
    split_cfg = cfg(SHARED, val_fraction=0.25, test_fraction=0.25)
    subjects = {s: {r.subject_id for r in BraTSDataset(split_cfg, s).records} for s in ("train", "val", "test")}
    assert subjects["train"] and subjects["val"] and subjects["test"]
    assert set.union(*subjects.values()) == set(CASES) and sum(map(len, subjects.values())) == len(CASES)


@needs_shared
def test_real_index_cache_is_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path))
    first = BraTSDataset(cfg(SHARED), "all")
    assert len(reads) == 4 and len(list(tmp_path.rglob("*.json"))) == 4
    second = BraTSDataset(cfg(SHARED), "all")
    assert len(reads) == 4 and first.records == second.records


# ------------------------------------------------------------ synthetic data

def test_synthetic_slices_and_sample(root: Path) -> None:
    tumour = BraTSDataset(cfg(root), "all")
    assert [r.slice_index for r in tumour.records] == [3, 4, 3, 4] and {r.label for r in tumour.records} == {"tumour"}
    assert tumour.records[0].caption == "brain MRI, necrotic core, edema, enhancing tumour"
    healthy = BraTSDataset(cfg(root, slices="healthy"), "all")
    assert [r.slice_index for r in healthy.records][:4] == [1, 2, 5, 6]
    assert healthy.records[0].caption == "brain MRI, no tumour"
    assert len(BraTSDataset(cfg(root, slices="brain"), "all")) == 12
    assert len(BraTSDataset(cfg(root, slices="all"), "all")) == 16
    sample = tumour[0]
    assert sample["image"].shape == (2, 32, 32) and sample["mask"].shape == (3, 32, 32)
    assert sample["mask"].sum(0).max() == 1 and all(sample["mask"][k].sum() > 0 for k in range(3))


def test_orientation_is_radiological_and_invertible() -> None:
    volume_slice = np.zeros((2, 5, 6))
    volume_slice[:, 0, 0] = 1  # LPS: i=0 is the patient's right, j=0 the front
    image = slice_to_image(volume_slice)
    assert image.shape == (2, 6, 5) and image[0, 0, 0] == 1  # front at the top, patient's right on the left
    ras = slice_to_image(volume_slice, ("R", "A", "S"))  # i=0 is the patient's left, j=0 the back
    assert ras[0, -1, -1] == 1
    for codes in (("L", "P", "S"), ("R", "A", "S"), ("A", "R", "S")):
        assert np.array_equal(image_to_slice(slice_to_image(volume_slice, codes), codes), volume_slice)


def test_label_3_is_ncr_and_5_is_bad(tmp_path: Path) -> None:
    seg = np.zeros((32, 32, 8), np.uint8)
    seg[10:14, 10:14, 4] = 3
    write_case(tmp_path / "ok", "BraTS2021_00001", seg=seg)
    mask = BraTSDataset(cfg(tmp_path / "ok"), "all")[0]["mask"]
    assert mask[0].sum() == 16 and mask[1:].sum() == 0
    seg[0, 0, 0] = 5
    write_case(tmp_path / "bad", "BraTS2021_00001", seg=seg)
    with pytest.raises(BadSampleError, match=r"_seg\.nii\.gz: unknown label values \[5"):
        BraTSDataset(cfg(tmp_path / "bad"), "all")


def test_truncated_files(root: Path) -> None:
    seg = root / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    flair = root / "BraTS2021_00002" / "BraTS2021_00002_flair.nii.gz"
    data = gzip.compress(gzip.decompress(flair.read_bytes()))
    flair.write_bytes(data[: len(data) // 2])
    ds = BraTSDataset(cfg(root), "all")  # tumour slices: the scan reads only headers of the sequences
    with pytest.raises(BadSampleError, match="BraTS2021_00002_flair.nii.gz: cannot decode NIfTI"):
        ds[2]
    seg.write_bytes(seg.read_bytes()[:200])
    with pytest.raises(BadSampleError, match="BraTS2021_00001_seg.nii.gz"):
        BraTSDataset(cfg(root), "all")


def test_seg_shape_differs(tmp_path: Path) -> None:
    write_case(tmp_path, "BraTS2021_00001", seg=np.zeros((32, 32, 9), np.uint8))
    with pytest.raises(BadSampleError, match=r"_flair\.nii\.gz: shape \(32, 32, 8\) differs .* \(32, 32, 9\)"):
        BraTSDataset(cfg(tmp_path), "all")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_flair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path, value: float) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    path = root / "BraTS2021_00001" / "BraTS2021_00001_flair.nii.gz"
    volume = nib.load(path).get_fdata().astype(np.float32)
    volume[5, 5, 3] = value
    nib.save(nib.Nifti1Image(volume, LPS), path)
    with pytest.raises(BadSampleError, match="_flair.nii.gz: 1 NaN/Inf"):
        BraTSDataset(cfg(root, slices="brain"), "all")
    with pytest.raises(BadSampleError, match="_flair.nii.gz: 1 NaN/Inf"):
        BraTSDataset(cfg(root), "all")[0]
    assert not slice_cache_folders()
    skipping = BraTSDataset(cfg(root, on_bad_sample="skip"), "all")
    assert skipping[0]["subject_id"] == "BraTS2021_00002" and str(path) in skipping.skipped.reasons


def test_empty_or_missing_root(tmp_path: Path) -> None:
    with pytest.raises(BadSampleError, match="no samples found"):
        BraTSDataset(cfg(tmp_path), "all")
    with pytest.raises(BadSampleError, match="does not exist"):
        BraTSDataset(cfg(tmp_path / "nowhere"), "all")


def test_missing_modality_and_skip(root: Path) -> None:
    write_case(root, "BraTS2021_00003", kinds=("flair",))
    missing = root / "BraTS2021_00003" / "BraTS2021_00003_t1ce.nii.gz"
    with pytest.raises(BadSampleError, match=f"{missing}: case BraTS2021_00003 has no t1ce file"):
        BraTSDataset(cfg(root), "all")
    write_case(root, "BraTS2021_00004", seg=np.full((32, 32, 8), 7, np.uint8))
    ds = BraTSDataset(cfg(root, on_bad_sample="skip"), "all")
    assert ds.channel_names == ("flair", "t1ce")
    assert {r.subject_id for r in ds.records} == {"BraTS2021_00001", "BraTS2021_00002"}
    assert set(ds.skipped.reasons) == {str(missing), str(root / "BraTS2021_00004" / "BraTS2021_00004_seg.nii.gz")}


def test_raw_uint16_normalises(tmp_path: Path) -> None:
    write_case(tmp_path, "BraTS2021_00001", kinds=("flair", "t1", "t1ce", "t2"), raw=True)
    ds = BraTSDataset(cfg(tmp_path, slices="brain"), "all")
    assert ds.channel_names == ("flair", "t1", "t1ce", "t2")
    image = ds[0]["image"].numpy()
    assert image.min() == -1.0 and image.max() == 1.0 and (image[:, 0, 0] == -1).all()
    brain = image[0] > -1
    assert 0.3 < brain.mean() < 0.8 and abs(float(image[0][brain].mean())) < 0.2


def test_index_cache_invalidation(root: Path, reads: list[str]) -> None:
    BraTSDataset(cfg(root), "all")
    BraTSDataset(cfg(root), "all")
    assert reads == ["BraTS2021_00001_seg.nii.gz", "BraTS2021_00002_seg.nii.gz"]
    seg = root / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz"
    os.utime(seg, ns=(seg.stat().st_atime_ns, seg.stat().st_mtime_ns + 10**9))
    BraTSDataset(cfg(root), "all")
    assert reads[2:] == ["BraTS2021_00002_seg.nii.gz"]


def test_volume_lru_and_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path, reads: list[str]) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    ds = BraTSDataset(cfg(root, volume_cache=1, slice_cache=False), "all")
    reads.clear()
    for index in (0, 1, 0, 2, 3, 0):
        ds[index]
    assert len(reads) == 9  # case 1, case 2, case 1 again; three files each
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._volumes) == 0 and np.array_equal(clone[0]["image"], ds[0]["image"])
    assert not slice_cache_folders()


def slice_cache_folders() -> list[Path]:
    return sorted(Path(os.environ["MEDDTFM_CACHE"]).glob("brats_volumes-*"))


def all_samples(ds: BraTSDataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(s["image"].numpy(), s["mask"].numpy()) for s in (ds[i] for i in range(len(ds)))]


def test_slice_cache_decodes_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path,
                                            reads: list[str]) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    ds = BraTSDataset(cfg(root, slices="all", volume_cache=0), "all")  # no LRU: every sample goes to the cache
    reads.clear()
    loader = DataLoader(ds, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    for epoch in range(2):
        ds.set_epoch(epoch)
        assert sum(len(batch["image"]) for batch in loader) == 16
    worker = pickle.loads(pickle.dumps(ds))  # another worker or rank
    all_samples(worker)
    assert Counter(reads) == Counter(p.name for p in root.rglob("*.nii.gz")) and len(reads) == 6
    folders = slice_cache_folders()
    assert len(folders) == 2 and all(sorted(p.name for p in f.iterdir()) == ["classes.npy", "images.npy"]
                                      for f in folders)
    images = np.load(folders[0] / "images.npy", mmap_mode="r")
    assert images.dtype == np.float16 and images.shape == (8, 2, 32, 32)


def test_slice_cache_matches_memory(root: Path) -> None:
    on = BraTSDataset(cfg(root, slices="all", whole_tumour=True), "all")
    off = BraTSDataset(cfg(root, slices="all", whole_tumour=True, slice_cache=False), "all")
    first, mapped = all_samples(on), all_samples(pickle.loads(pickle.dumps(on)))
    for a, b, c in zip(first, all_samples(off), mapped):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])


def test_slice_cache_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path,
                                  reads: list[str]) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    before = all_samples(BraTSDataset(cfg(root), "all"))
    flair = root / "BraTS2021_00002" / "BraTS2021_00002_flair.nii.gz"
    volume = nib.load(flair).get_fdata().astype(np.float32)
    nib.save(nib.Nifti1Image(np.where(volume > -3.5, -volume, volume), LPS), flair)
    reads.clear()
    after = all_samples(BraTSDataset(cfg(root), "all"))
    assert sorted(reads) == sorted(p.name for p in flair.parent.iterdir()) and len(slice_cache_folders()) == 3
    assert np.array_equal(before[0][0], after[0][0]) and not np.array_equal(before[2][0][0], after[2][0][0])
    reads.clear()
    all_samples(BraTSDataset(cfg(root, intensity_percentiles=[1.0, 99.0]), "all"))
    assert len(reads) == 6 and len(slice_cache_folders()) == 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong shape"])
def test_corrupt_slice_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path,
                                        reads: list[str], caplog: pytest.LogCaptureFixture, damage: str) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    before = all_samples(BraTSDataset(cfg(root), "all"))
    folder = slice_cache_folders()[0]
    images = folder / "images.npy"
    data = images.read_bytes()
    if damage == "wrong shape":
        np.save(images, np.zeros((8, 3, 32, 32), np.float16))
    else:
        broken = {"garbage": b"not an npy file" * 64, "truncated": data[: len(data) // 2], "empty": b""}
        images.write_bytes(broken[damage])
    reads.clear()
    with caplog.at_level(logging.WARNING, logger="meddtfm.data.brats_volumes"):
        after = all_samples(BraTSDataset(cfg(root), "all"))
    assert len(reads) == 3 and "rebuilding" in caplog.text
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(before, after))
    assert images.read_bytes() == data


def test_unwritable_slice_cache_keeps_cases_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      root: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = all_samples(BraTSDataset(cfg(root, slice_cache=False), "all"))
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "file"))
    with caplog.at_level(logging.WARNING, logger="meddtfm.data.brats"):
        samples = all_samples(BraTSDataset(cfg(root), "all"))
    assert "cannot write cache entry" in caplog.text
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(reference, samples))


def test_concurrent_builders_share_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    ds = BraTSDataset(cfg(root), "all")
    workers = [pickle.loads(pickle.dumps(ds)) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        images = list(pool.map(lambda w: w[0]["image"].numpy(), workers))
    assert all(np.array_equal(images[0], i) for i in images)
    folder, = slice_cache_folders()
    assert sorted(p.name for p in folder.iterdir()) == ["classes.npy", "images.npy"]
    assert np.array_equal(pickle.loads(pickle.dumps(ds))[0]["image"], images[0])


def test_zero_background_z_scored(tmp_path: Path) -> None:
    """Background exactly 0, brain voxels both signs: the background is not the minimum."""
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        write_case(tmp_path, case, background=0.0)
    volume = nib.load(tmp_path / "BraTS2021_00001" / "BraTS2021_00001_flair.nii.gz").get_fdata()
    assert volume.min() < 0 and (volume == 0).mean() > 0.5
    assert len(BraTSDataset(cfg(tmp_path, slices="brain"), "all")) == 12
    healthy = BraTSDataset(cfg(tmp_path, slices="healthy"), "all")
    assert [r.slice_index for r in healthy.records] == [1, 2, 5, 6] * 2
    info = healthy.case_info["BraTS2021_00001"]
    assert info == {"slices": 8, "tumour": 2, "brain": 6, "healthy": 4, "selected": 4, "NCR": 2, "ED": 2, "ET": 2}
    image = BraTSDataset(cfg(tmp_path, slices="brain"), "all")[0]["image"].numpy()
    assert (image[:, 0, 0] == -1).all() and image.max() == 1.0
    brain = image[0] > -1
    assert 0.3 < brain.mean() < 0.8 and abs(float(image[0][brain].mean())) < 0.2
    assert brats_volumes.background_value(volume) == 0.0 and brats_volumes.background_value(volume - 3.5) == -3.5


def test_garbage_nifti(root: Path) -> None:
    flair = root / "BraTS2021_00002" / "BraTS2021_00002_flair.nii.gz"
    flair.write_bytes(b"this is not gzip, nor NIfTI" * 100)
    with pytest.raises(BadSampleError, match=r"BraTS2021_00002_flair\.nii\.gz: cannot read the NIfTI header"):
        BraTSDataset(cfg(root), "all")
    with pytest.raises(BadSampleError, match=r"BraTS2021_00002_flair\.nii\.gz: cannot decode NIfTI"):
        BraTSDataset(cfg(root, slices="brain"), "all")
    skipping = BraTSDataset(cfg(root, on_bad_sample="skip"), "all")
    assert {r.subject_id for r in skipping.records} == {"BraTS2021_00001"} and str(flair) in skipping.skipped.reasons


@pytest.mark.parametrize("kind, shape", [("flair", (32, 32, 8, 2)), ("flair", (32, 32)), ("seg", (32, 32))])
def test_volume_not_3d(root: Path, kind: str, shape: tuple[int, ...]) -> None:
    path = root / "BraTS2021_00001" / f"BraTS2021_00001_{kind}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8 if kind == "seg" else np.float32), LPS), path)
    name = rf"BraTS2021_00001_{kind}\.nii\.gz"
    if kind == "flair":  # the tumour scan reads only the header: the shape differs from the segmentation's
        with pytest.raises(BadSampleError, match=rf"{name}: shape {re.escape(str(shape))} differs"):
            BraTSDataset(cfg(root), "all")
    with pytest.raises(BadSampleError, match=rf"{name}: expected a 3D volume, got shape {re.escape(str(shape))}"):
        BraTSDataset(cfg(root, slices="brain"), "all")
