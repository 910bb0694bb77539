"""``meddtfm sample`` on four-sequence BraTS: 4-channel images from 3-class masks, class ablation, per-class
guidance and ``--volume`` (the whole case as NIfTI), with a 3-step generator at 32 px on tiny raw int16 cases,
its weights then jittered: three steps leave the residual branches near zero, which hides the mask."""
from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from meddtfm.checkpoint import load_weights, save_weights
from meddtfm.cli.main import cli

from .test_sample import GEN, _sets

SEQUENCES = ("flair", "t1", "t1ce", "t2")
AFFINE = np.array([[-1.2, 0, 0, 30], [0, -1.2, 0, 200], [0, 0, 2.5, -40], [0, 0, 0, 1]])
CASES = ("BraTS2021_00001", "BraTS2021_00002")
TUMOUR = (3, 4, 5)  # slices with a lesion; 5 has edema only


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (repr(result.exception) if result.exit_code else "")


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv") as fh:
        return list(csv.DictReader(fh))


def _write_cases(root: Path) -> Path:
    """Two LPS cases of 40 x 32 x 8 voxels, four raw int16 sequences (background 0), NCR / ED / ET in slices 3-4."""
    x, y = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 32), indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1)
    for n, case in enumerate(CASES):
        (root / case).mkdir(parents=True)
        rng = np.random.default_rng(n)
        for s, kind in enumerate(SEQUENCES):
            vol = np.zeros((40, 32, 8), np.int16)
            vol[:, :, 1:7] = np.where(head, 300 + 100 * s + 200 * x + rng.integers(0, 50, head.shape), 0)[:, :, None]
            nib.save(nib.Nifti1Image(vol, AFFINE), root / case / f"{case}_{kind}.nii.gz")
        seg = np.zeros((40, 32, 8), np.uint8)
        r = np.hypot(x - 0.2, y)
        for z in (3, 4):
            seg[:, :, z] = np.select([r < 0.15, r < 0.3, r < 0.45], [1, 4, 2], 0)
        seg[:, :, 5] = np.where(r < 0.3, 2, 0)
        nib.save(nib.Nifti1Image(seg, AFFINE), root / case / f"{case}_seg.nii.gz")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step Med-DT-FM (no teacher) on the four sequences: ``final.safetensors``."""
    root = tmp_path_factory.mktemp("brats4")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDDTFM_CACHE", str(root / "cache"))
        data = ["data.name=brats2021", f"data.root={_write_cases(root / 'data')}", "data.resolution=32",
                "data.val_fraction=0.0", "data.test_fraction=0.0", "data.batch_size=2", "data.num_workers=0",
                "flow.dt_weights=[0,0,0,0]", "flow.reference=false", "flow.class_ablation=0.3",
                "train.warmup_steps=1", "train.val_every=100", "train.sample_every=100"]
        code, out = _run("train", "--config", "brats2021", *_sets(data, GEN), "--out", str(root / "run"))
    assert code == 0, out
    weights, config = load_weights(root / "run" / "final.safetensors")
    g = torch.Generator().manual_seed(0)
    jittered = {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                for k, v in weights.items()}
    return save_weights(jittered, root / "run" / "jittered.safetensors", config)


@pytest.fixture(autouse=True)
def _cache(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(model.parents[1] / "cache"))


def _sample(model: Path, out: Path, *args: str) -> list[dict]:
    code, text = _run("sample", "--checkpoint", str(model), "--solver", "euler", "--nfe", "2", "--out", str(out), *args)
    assert code == 0, text
    return _rows(out)


def _pixels(out: Path, row: dict) -> np.ndarray:
    return np.stack([np.asarray(Image.open(out / f)) for f in row["files"].split(";") if f.endswith(".png")])


def test_four_channels_from_three_classes_and_class_ablation(tmp_path: Path, model: Path) -> None:
    plain = _sample(model, tmp_path / "plain", "--dataset", "train")
    assert len(plain) == 6 and [Path(f).name for f in plain[0]["files"].split(";")][:4] == [
        f"{plain[0]['name']}_{s}.png" for s in SEQUENCES]
    ablated = _sample(model, tmp_path / "ablated", "--dataset", "train", "--drop-class", "ET")
    assert {r["drop_classes"] for r in ablated} == {"ET"}
    for before, after in zip(plain, ablated):
        seg = [f for f in after["files"].split(";") if f.endswith("_seg.nii.gz")][0]
        labels = set(np.unique(np.asarray(nib.load(str(tmp_path / "ablated" / seg)).dataobj)).tolist())
        original = set(np.unique(np.asarray(nib.load(str(tmp_path / "plain" / seg)).dataobj)).tolist())
        assert 4 not in labels and labels == original - {4}, after["name"]  # ET gone, NCR and ED kept
        if 4 in original:
            assert not np.array_equal(_pixels(tmp_path / "plain", before), _pixels(tmp_path / "ablated", after))
    code, text = _run("sample", "--checkpoint", str(model), "--dataset", "train", "--drop-class", "WT",
                      "--out", str(tmp_path / "bad"))
    assert code == 2 and "--drop-class WT: this model's classes are NCR, ED, ET" in text


def test_per_class_guidance(tmp_path: Path, model: Path) -> None:
    args = ("--dataset", "train", "--limit", "2", "--cfg", "1")
    plain = _sample(model, tmp_path / "plain", *args)
    same = _sample(model, tmp_path / "same", *args, "--cfg-class", "ET=1")
    stressed = _sample(model, tmp_path / "stressed", *args, "--cfg-class", "ET=4", "--cfg-class", "NCR=2")
    assert stressed[0]["cfg_classes"] == "ET=4 NCR=2"
    for a, b, c in zip(plain, same, stressed):
        assert np.array_equal(_pixels(tmp_path / "plain", a), _pixels(tmp_path / "same", b))
        assert not np.array_equal(_pixels(tmp_path / "plain", a), _pixels(tmp_path / "stressed", c))
    for bad, message in (("XX=2", "--cfg-class XX: this model's classes are NCR, ED, ET"),
                         ("ET", "--cfg-class ET: expected NAME=SCALE")):
        code, text = _run("sample", "--checkpoint", str(model), *args, "--cfg-class", bad, "--out", str(tmp_path / "x"))
        assert code == 2 and message in text, text


@pytest.mark.parametrize("mode", [[], ["--mode", "reference", "--dataset-reference", "healthy"]])
def test_volume_writes_the_whole_case_on_its_grid(tmp_path: Path, model: Path, mode: list[str]) -> None:
    case = CASES[1]
    rows = _sample(model, tmp_path / "out", "--volume", case, "--drop-class", "ET", *mode)
    assert [r["name"] for r in rows] == [f"{case}_s{z:03d}" for z in TUMOUR]
    assert not (tmp_path / "out" / "nifti").exists()  # the stack replaces the single-slice files
    root = model.parents[1] / "data" / case
    for kind in (*SEQUENCES, "seg"):
        original, written = nib.load(str(root / f"{case}_{kind}.nii.gz")), nib.load(
            str(tmp_path / "out" / "volume" / f"{case}_{kind}.nii.gz"))
        assert written.shape == original.shape and np.allclose(written.affine, AFFINE)
        assert written.get_data_dtype() == original.get_data_dtype()
        assert np.array_equal(written.header.get_zooms(), original.header.get_zooms())
        new, old = np.asarray(written.dataobj), np.asarray(original.dataobj)
        changed = [z for z in range(old.shape[2]) if not np.array_equal(new[:, :, z], old[:, :, z])]
        assert changed == list(TUMOUR) if kind != "seg" else changed == [3, 4], kind  # slice 5: edema only
    seg = np.asarray(nib.load(str(tmp_path / "out" / "volume" / f"{case}_seg.nii.gz")).dataobj)
    assert set(np.unique(seg[:, :, 3]).tolist()) == {0, 1, 2}  # ET dropped, NCR and ED kept


def test_volume_errors(tmp_path: Path, model: Path) -> None:
    code, text = _run("sample", "--checkpoint", str(model), "--volume", "BraTS2021_99999", "--out", str(tmp_path))
    assert code == 2 and "has no case BraTS2021_99999 with a lesion mask" in text and CASES[0] in text
    code, text = _run("sample", "--checkpoint", str(model), "--volume", CASES[0], "--dataset", "train",
                      "--out", str(tmp_path))
    assert code == 2 and "one of --masks DIR, --dataset SPLIT, --volume CASE" in text
    code, text = _run("sample", "--checkpoint", str(model), "--volume", CASES[0], "--num-per-condition", "2",
                      "--out", str(tmp_path))
    assert code == 2 and "--num-per-condition 1" in text


def test_write_volume_inverts_the_loader(tmp_path: Path, model: Path) -> None:
    """A real slice, normalised by the loader and written back by ``write_volume``, is the original within the
    percentile window (one int16 step for the float16 slice cache), its background the original's."""
    from meddtfm.config import DataConfig
    from meddtfm.data import build_dataset
    from meddtfm.data.nifti_out import write_volume

    root = model.parents[1] / "data"
    ds = build_dataset(DataConfig(name="brats2021", root=str(root), resolution=32, augment=False, val_fraction=0.0,
                                  test_fraction=0.0), "all")
    index = next(i for i, r in enumerate(ds.records) if r.slice_index == 4)
    sample, record = ds[index], ds.records[index]
    paths = write_volume({4: (sample["image"], sample["mask"])}, record.paths, record.mask_path, ds.channel_names,
                         ds.class_names, [0.5, 99.5], tmp_path, "x")
    for path, source in zip(paths, (*record.paths, record.mask_path)):
        new, old = np.asarray(nib.load(str(path)).dataobj)[:, :, 4], np.asarray(nib.load(source).dataobj)[:, :, 4]
        if path.name.endswith("_seg.nii.gz"):
            assert np.array_equal(new, old)
            continue
        brain = np.asarray(nib.load(source).dataobj) > 0
        lo, hi = np.percentile(np.asarray(nib.load(source).dataobj)[brain], [0.5, 99.5])
        inside = (old > lo) & (old < hi)
        assert np.abs(new[inside].astype(int) - old[inside]).max() <= 1 and (new[old == 0] == 0).all(), path.name


def test_volume_of_a_real_case(tmp_path: Path, brats_4seq_two: Path, shared_cache: Path) -> None:
    """A 2-step generator on two real four-sequence cases at 32 px: ``--volume`` keeps the case's affine, shape,
    int16 type and every slice it did not synthesise."""
    data = ["data.resolution=32", "data.batch_size=2", "data.num_workers=0", "data.val_fraction=0.0",
            "data.test_fraction=0.0", "flow.dt_weights=[0,0,0,0]", "flow.reference=false", "train.warmup_steps=1",
            "train.val_every=100", "train.sample_every=100", f"data.root={brats_4seq_two}"]
    code, text = _run("train", "--config", "brats2021", *_sets(data, GEN, ["train.steps=2"]),
                      "--out", str(tmp_path / "run"))
    assert code == 0, text
    case = "BraTS2021_91002"
    rows = _sample(tmp_path / "run" / "final.safetensors", tmp_path / "out", "--volume", case, "--limit", "3")
    synthesised = [int(r["name"][-3:]) for r in rows]
    for kind in (*SEQUENCES, "seg"):
        original = nib.load(str(brats_4seq_two / case / f"{case}_{kind}.nii.gz"))
        written = nib.load(str(tmp_path / "out" / "volume" / f"{case}_{kind}.nii.gz"))
        assert written.shape == original.shape == (240, 240, 155) and np.array_equal(written.affine, original.affine)
        assert written.get_data_dtype() == original.get_data_dtype()
        new, old = np.asarray(written.dataobj), np.asarray(original.dataobj)
        changed = [z for z in range(155) if not np.array_equal(new[:, :, z], old[:, :, z])]
        assert changed == synthesised if kind != "seg" else set(changed) <= set(synthesised), kind
