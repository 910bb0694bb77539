from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from meddtfm.config import DataConfig
from meddtfm.data import BadSampleError, build_dataset
from meddtfm.data.isic import DIAGNOSES, ISICDataset

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "isic2019"
GT_HEADER = "image," + ",".join(DIAGNOSES)


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"name": "isic2019", "root": str(root), "resolution": 64, "augment": False, **kw})


@pytest.fixture(scope="module")
def real() -> ISICDataset:
    if not REAL.is_dir():
        pytest.skip(f"real ISIC data not found at {REAL}")
    return ISICDataset(_cfg(REAL), "all")


def test_real_counts(real):
    assert len(real) == 2150
    assert all(r.mask_path is not None for r in real.records)
    labels = {r.label for r in real.records}
    assert labels == {"MEL", "NV", "BKL"}
    assert real.channel_names == ("R", "G", "B") and real.class_names == ("lesion",)


def test_real_samples(real):
    for index in (0, 1000, 2149):
        s = real[index]
        assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
        assert -1 <= s["image"].min() < s["image"].max() <= 1
        assert s["mask"].shape == (1, 64, 64) and set(s["mask"].unique().tolist()) <= {0.0, 1.0}
        assert bool(s["has_mask"]) and s["mask"].sum() > 0
        assert s["caption"].startswith("dermoscopy, ") and s["slice_index"] == -1
    first = next(r for r in real.records if r.sample_id == "ISIC_0000000")
    assert first.caption == "dermoscopy, melanocytic nevus, female, about 55 years" and first.label == "NV"
    no_meta = next(r for r in real.records if r.sample_id == "ISIC_0000109")
    assert no_meta.caption == "dermoscopy, melanocytic nevus"


def test_real_splits_are_disjoint_by_subject():
    if not REAL.is_dir():
        pytest.skip(f"real ISIC data not found at {REAL}")
    cfg = _cfg(REAL, val_fraction=0.1, test_fraction=0.1)
    splits = {name: build_dataset(cfg, name) for name in ("train", "val", "test")}
    subjects = {name: {r.subject_id for r in ds.records} for name, ds in splits.items()}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    assert sum(len(ds) for ds in splits.values()) == 2150
    assert 150 < len(splits["val"]) < 280


def _write_layout(root: Path, n: int = 3, size: tuple[int, int] = (40, 30)) -> Path:
    """n RGB JPEGs (W x H = ``size``), a ground-truth CSV (all NV), metadata and 0/255 masks."""
    (root / "ISIC_2019_Training_Input").mkdir(parents=True)
    (root / "ISIC2018_Task1_Training_GroundTruth").mkdir()
    rng = np.random.default_rng(0)
    gt, meta = [GT_HEADER], ["image,age_approx,anatom_site_general,lesion_id,sex"]
    for i in range(n):
        iid = f"ISIC_{i:07d}"
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "ISIC_2019_Training_Input" / f"{iid}.jpg", quality=95)
        mask = np.zeros((size[1], size[0]), np.uint8)
        mask[5:20, 5:20] = 255
        Image.fromarray(mask).save(root / "ISIC2018_Task1_Training_GroundTruth" / f"{iid}_segmentation.png")
        gt.append(f"{iid},0,1,0,0,0,0,0,0,0")
        meta.append(f"{iid},45,posterior torso,HAM_{i // 2:07d},male")
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(gt) + "\n")
    (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    return root


def _image(root: Path, i: int) -> Path:
    return root / "ISIC_2019_Training_Input" / f"ISIC_{i:07d}.jpg"


def _mask(root: Path, i: int) -> Path:
    return root / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{i:07d}_segmentation.png"


def test_synthetic_layout_caption_subject_and_crop(tmp_path):
    ds = ISICDataset(_cfg(_write_layout(tmp_path), resolution=16), "all")
    assert [r.subject_id for r in ds.records] == ["HAM_0000000", "HAM_0000000", "HAM_0000001"]
    s = ds[0]
    assert s["caption"] == "dermoscopy, melanocytic nevus, posterior torso, male, about 45 years"
    assert s["image"].shape == (3, 16, 16) and s["mask"].shape == (1, 16, 16)


def test_image_without_mask_or_metadata_is_caption_only(tmp_path):
    root = _write_layout(tmp_path)
    _mask(root, 1).unlink()
    meta = root / "ISIC_2019_Training_Metadata.csv"
    meta.write_text("\n".join(meta.read_text().splitlines()[:2]) + "\n")  # keep only image 0's row
    ds = ISICDataset(_cfg(root), "all")
    s = ds[1]
    assert not bool(s["has_mask"]) and s["mask"].shape == (1, 64, 64) and s["mask"].sum() == 0
    assert s["caption"] == "dermoscopy, melanocytic nevus" and s["subject_id"] == "ISIC_0000001"
    meta.unlink()
    assert ISICDataset(_cfg(root), "all").records[0].caption == "dermoscopy, melanocytic nevus"


def test_batches_mix_masked_and_caption_only(tmp_path):
    root = _write_layout(tmp_path)
    _mask(root, 2).unlink()
    batch = next(iter(DataLoader(ISICDataset(_cfg(root), "all"), batch_size=3, num_workers=0)))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["mask"].shape == (3, 1, 64, 64)
    assert batch["has_mask"].tolist() == [True, True, False] and len(batch["caption"]) == 3


def test_missing_ground_truth_csv(tmp_path):
    root = _write_layout(tmp_path)
    (root / "ISIC_2019_Training_GroundTruth.csv").unlink()
    with pytest.raises(BadSampleError, match="ISIC_2019_Training_GroundTruth.csv: CSV file does not exist"):
        ISICDataset(_cfg(root), "all")


def test_missing_csv_row_raises_or_skips(tmp_path):
    root = _write_layout(tmp_path)
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n")  # drops image 2
    with pytest.raises(BadSampleError,
                       match=r"ISIC_0000002\.jpg: image id ISIC_0000002 has no row in .*GroundTruth\.csv"):
        ISICDataset(_cfg(root), "all")
    ds = ISICDataset(_cfg(root, on_bad_sample="skip"), "all")
    assert len(ds) == 2 and list(ds.skipped.reasons) == [str(_image(root, 2))]


@pytest.mark.parametrize("row", ["0,1,0,0,1,0,0,0,0", "0,0,0,0,0,0,0,0,0", "0,0.5,0,0,0,0,0,0,0.5", "0,1,0,0,0,0,0,0,"])
def test_row_not_one_hot(tmp_path, row):
    root = _write_layout(tmp_path)
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    csv.write_text(csv.read_text().replace("ISIC_0000001,0,1,0,0,0,0,0,0,0", f"ISIC_0000001,{row}"))
    with pytest.raises(BadSampleError, match="ISIC_0000001 of .* is not one-hot"):
        ISICDataset(_cfg(root), "all")


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_corrupt_or_truncated_jpeg(tmp_path, damage):
    root = _write_layout(tmp_path)
    path = _image(root, 1)
    data = path.read_bytes()
    path.write_bytes(b"not a jpeg at all" * 20 if damage == "corrupt" else data[: len(data) // 2])
    ds = ISICDataset(_cfg(root), "all")
    with pytest.raises(BadSampleError, match=r"ISIC_0000001\.jpg: cannot decode image"):
        ds[1]
    skipping = ISICDataset(_cfg(root, on_bad_sample="skip"), "all")
    assert skipping[1]["sample_id"] == "ISIC_0000002" and str(path) in skipping.skipped.reasons


def test_mask_size_mismatch(tmp_path):
    root = _write_layout(tmp_path)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(_mask(root, 0))
    with pytest.raises(BadSampleError,
                       match=r"_segmentation\.png: mask size \(10, 10\) differs from image size \(30, 40\)"):
        ISICDataset(_cfg(root), "all")[0]


def test_non_binary_mask(tmp_path):
    root = _write_layout(tmp_path)
    Image.fromarray(np.arange(1200, dtype=np.uint8).reshape(30, 40)).save(_mask(root, 0))
    with pytest.raises(BadSampleError, match=r"_segmentation\.png: mask is not binary"):
        ISICDataset(_cfg(root), "all")[0]


def test_grayscale_jpeg_is_an_error(tmp_path):
    root = _write_layout(tmp_path)
    Image.fromarray(np.full((30, 40), 128, np.uint8)).save(_image(root, 0))
    with pytest.raises(BadSampleError, match=r"ISIC_0000000\.jpg: has 1 channel\(s\), expected 3 \(R, G, B\)"):
        ISICDataset(_cfg(root), "all")[0]


def test_empty_or_missing_image_folder(tmp_path):
    root = _write_layout(tmp_path)
    for i in range(3):
        _image(root, i).unlink()
    with pytest.raises(BadSampleError, match="no samples found"):
        ISICDataset(_cfg(root), "all")
    (root / "ISIC_2019_Training_Input").rmdir()
    with pytest.raises(BadSampleError, match="ISIC_2019_Training_Input: folder does not exist"):
        ISICDataset(_cfg(root), "all")
