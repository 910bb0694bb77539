from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from meddtfm.config import DataConfig
from meddtfm.data import BadSampleError, build_dataset
from meddtfm.data.folder import FolderDataset


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"name": "folder", "root": str(root), "resolution": 16, "augment": False, **kw})


def _rgb(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def _labels(*values: int) -> np.ndarray:
    """A 24 x 32 label map: background 0, then one 4-row band per value."""
    labels = np.zeros((24, 32), np.uint8)
    for i, v in enumerate(values):
        labels[4 * i + 2: 4 * i + 6] = v
    return labels


@pytest.fixture
def root(tmp_path) -> Path:
    """a.png (mask 0/255), b.jpg (mask 0/1), c.tif (no mask), captions for a and c (a with a subject)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(_rgb(255)).save(tmp_path / "images" / "a.png")
    Image.fromarray(_rgb(0)).save(tmp_path / "images" / "b.jpg", quality=100)
    tifffile.imwrite(tmp_path / "images" / "c.tif", _rgb(128))
    Image.fromarray(_labels(255)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(_labels(1)).save(tmp_path / "masks" / "b.png")
    (tmp_path / "captions.csv").write_text("image,caption,subject\na,\"dermoscopy, nevus\",p1\nc.tif,a caption,\n")
    return tmp_path


def test_layout_captions_subjects_and_tiff(root):
    ds = FolderDataset(_cfg(root), "all")
    assert ds.channel_names == ("R", "G", "B") and ds.class_names == ("lesion",)
    assert [(r.sample_id, r.subject_id, r.caption) for r in ds.records] == [
        ("a", "p1", "dermoscopy, nevus"), ("b", "b", ""), ("c", "c", "a caption")]
    a, b, c = ds[0], ds[1], ds[2]
    torch.testing.assert_close(a["image"], torch.ones(3, 16, 16))
    torch.testing.assert_close(b["image"], -torch.ones(3, 16, 16))
    assert a["mask"].shape == (1, 16, 16) and a["mask"].sum() > 0 and torch.equal(a["mask"], b["mask"])
    assert c["source"].endswith("c.tif") and not bool(c["has_mask"]) and c["mask"].sum() == 0
    torch.testing.assert_close(c["image"], torch.full((3, 16, 16), 128 / 127.5 - 1))


def test_grayscale_and_16_bit(tmp_path):
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "x.tif", np.full((20, 20), 65535, np.uint16))
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "images" / "y.png")
    ds = FolderDataset(_cfg(tmp_path), "all")
    assert ds.channel_names == ("gray",) and ds[0]["image"].shape == (1, 16, 16)
    torch.testing.assert_close(ds[0]["image"], torch.ones(1, 16, 16))
    torch.testing.assert_close(ds[1]["image"], -torch.ones(1, 16, 16))


def test_multi_class_masks_from_classes_txt(root):
    (root / "classes.txt").write_text("# value name\n1 necrotic core\n\n2 edema\n4 enhancing\n")
    Image.fromarray(_labels(1, 2, 4)).save(root / "masks" / "a.png")
    Image.fromarray(_labels(4)).save(root / "masks" / "b.png")
    ds = FolderDataset(_cfg(root, resolution=24), "all")  # the 24 x 24 centre crop, not resized
    assert ds.class_names == ("necrotic core", "edema", "enhancing") and ds.num_classes == 3
    mask = ds[0]["mask"]
    assert mask.shape == (3, 24, 24) and mask.sum(0).max() == 1
    assert [mask[k].sum().item() for k in range(3)] == [4 * 24] * 3
    assert ds[1]["mask"][2].sum() > 0 and ds[1]["mask"][:2].sum() == 0


def test_unknown_label_value(root):
    (root / "classes.txt").write_text("1 necrotic core\n2 edema\n")
    Image.fromarray(_labels(1, 3)).save(root / "masks" / "a.png")
    with pytest.raises(BadSampleError, match=r"masks/a\.png: unknown label values \[3\]"):
        FolderDataset(_cfg(root), "all")[0]
    skipping = FolderDataset(_cfg(root, on_bad_sample="skip"), "all")
    assert skipping[0]["sample_id"] == "b" and "[3]" in skipping.skipped.reasons[str(root / "masks" / "a.png")]


@pytest.mark.parametrize("text", ["1\n", "x lesion\n", "0 background\n", "1 a\n1 b\n", "# nothing\n"])
def test_bad_classes_txt(root, text):
    (root / "classes.txt").write_text(text)
    with pytest.raises(BadSampleError, match="classes.txt"):
        FolderDataset(_cfg(root), "all")


def test_binary_default_rejects_label_maps(root):
    Image.fromarray(_labels(1, 2)).save(root / "masks" / "a.png")
    with pytest.raises(BadSampleError, match=r"masks/a\.png: mask is not binary"):
        FolderDataset(_cfg(root), "all")[0]


def test_mask_size_mismatch(root):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "b.png")
    with pytest.raises(BadSampleError, match=r"masks/b\.png: mask size \(10, 10\) differs from image size \(24, 32\)"):
        FolderDataset(_cfg(root), "all")[1]


def test_channel_count_must_match_first_image(root):
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "images" / "b.jpg")
    with pytest.raises(BadSampleError, match=r"b\.jpg: has 1 channel\(s\), expected 3 \(R, G, B\)"):
        FolderDataset(_cfg(root), "all")[1]
    Image.fromarray(np.zeros((24, 32, 4), np.uint8)).save(root / "images" / "a.png")
    with pytest.raises(BadSampleError, match=r"a\.png: has 4 channels, expected 1 \(grayscale\) or 3 \(RGB\)"):
        FolderDataset(_cfg(root), "all")


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_corrupt_or_truncated_png_is_skipped(root, damage):
    path = root / "images" / "a.png"
    data = path.read_bytes()
    path.write_bytes(b"\x89PNG garbage" if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(BadSampleError, match=r"a\.png: cannot decode image"):
        FolderDataset(_cfg(root), "all")
    ds = FolderDataset(_cfg(root, on_bad_sample="skip"), "all")  # channels come from b.jpg instead
    assert ds.channel_names == ("R", "G", "B") and ds[0]["sample_id"] == "b"
    assert list(ds.skipped.reasons) == [str(path)]


def test_empty_folder_and_duplicate_stems(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(BadSampleError, match="no samples found"):
        FolderDataset(_cfg(tmp_path), "all")
    Image.fromarray(_rgb(0)).save(tmp_path / "images" / "a.png")
    Image.fromarray(_rgb(0)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(BadSampleError, match="same name"):
        FolderDataset(_cfg(tmp_path), "all")
    with pytest.raises(BadSampleError, match="images: folder does not exist"):
        FolderDataset(_cfg(tmp_path / "images"), "all")


def test_bad_captions_csv(root):
    (root / "captions.csv").write_text("name,text\na,b\n")
    with pytest.raises(BadSampleError, match=r"captions\.csv: missing columns \['image', 'caption'\]"):
        FolderDataset(_cfg(root), "all")


def test_splits_group_subjects(tmp_path):
    (tmp_path / "images").mkdir()
    rows = ["image,caption,subject"]
    for i in range(20):
        Image.fromarray(_rgb(i)).save(tmp_path / "images" / f"img{i:02d}.png")
        rows.append(f"img{i:02d},x,patient{i // 4}")
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    cfg = _cfg(tmp_path, val_fraction=0.2, test_fraction=0.2)
    subjects = {name: {r.subject_id for r in build_dataset(cfg, name).records} for name in ("train", "val", "test")}
    assert all(subjects[n] for n in ("train", "val", "test")), subjects
    assert set().union(*subjects.values()) == {f"patient{i}" for i in range(5)}
    assert sum(map(len, subjects.values())) == 5, "each patient in exactly one split"


def test_a_float_nifti_outside_the_unit_range_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    nib.save(nib.Nifti1Image(np.full((8, 8, 4), 300.0, np.float32), np.eye(4)), str(tmp_path / "images" / "a.nii.gz"))
    (tmp_path / "channels.txt").write_text("flair\nt1\nt1ce\nt2\n")
    folder = build_dataset(_cfg(tmp_path, resolution=8, val_fraction=0, test_fraction=0), "all")
    with pytest.raises(BadSampleError, match=r"a\.nii\.gz.*must be normalised to \[-1, 1\]"):
        folder[0]
    (tmp_path / "channels.txt").write_text("flair\nt1\n")
    with pytest.raises(BadSampleError, match="has 4 channels; .*channels.txt names 2"):
        build_dataset(_cfg(tmp_path, resolution=8, val_fraction=0, test_fraction=0), "all")
