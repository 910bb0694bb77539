"""``meddtfm sample`` end to end on phantoms and on a tiny BraTS-layout folder (NIfTI outputs)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from meddtfm.cli.main import cli
from meddtfm.cli.sample import OUTSIDE_MARGIN
from meddtfm.config import DataConfig
from meddtfm.data import build_dataset
from meddtfm.data.brats_volumes import slice_to_image
from meddtfm.data.nifti_out import write_sample
from meddtfm.evaluation.metrics import masked_ssim
from meddtfm.flow.sampling import lesion_region
from meddtfm.synthesis import read_mask_file

DATA = ["data.phantom_count=24", "data.val_fraction=0.2", "data.resolution=32", "data.batch_size=4",
        "data.num_workers=0", "train.warmup_steps=1", "train.val_every=100", "train.checkpoint_every=100",
        "train.sample_every=100"]
GEN = ["generator.base_channels=8", "generator.cond_channels=[8,8,8,8]", "generator.text_dim=16",
       "generator.time_dim=16", "generator.num_res_blocks=1", "generator.attention_at_bottleneck=false",
       "generator.dropout=0.0", "flow.adv_weight=0", "flow.val_batches=1", "train.steps=3"]
AFFINE = np.array([[-1.2, 0, 0, 30], [0, -1.2, 0, 200], [0, 0, 2.5, -40], [0, 0, 0, 1]])


def _sets(*groups: list[str]) -> list[str]:
    return [a for group in groups for o in group for a in ("--set", o)]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (repr(result.exception) if result.exit_code else "")


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def phantom_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step Med-DT-FM on MRI phantoms with a 2-step U-KAN teacher: ``run/final.safetensors``."""
    root = tmp_path_factory.mktemp("phantom-model")
    code, out = _run("pretrain-encoder", *_sets(DATA, ["encoder.widths=[4,8,16,24,32]", "train.steps=2"]),
                     "--out", str(root / "teacher"))
    assert code == 0, out
    code, out = _run("train", *_sets(DATA, GEN, [f"encoder.checkpoint={root / 'teacher' / 'best.safetensors'}"]),
                     "--out", str(root / "run"))
    assert code == 0, out
    return root / "run" / "final.safetensors"


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_noise_mode_on_the_dataset_is_deterministic_whatever_the_batch(tmp_path: Path, phantom_model: Path) -> None:
    args = ["sample", "--checkpoint", str(phantom_model), "--dataset", "val", "--solver", "euler", "--nfe", "2",
            "--num-per-condition", "2"]
    code, out = _run(*args, "--batch-size", "3", "--out", str(tmp_path / "a"))
    assert code == 0, out
    code, out = _run(*args, "--batch-size", "1", "--out", str(tmp_path / "b"))
    assert code == 0, out
    rows = _rows(tmp_path / "a")
    val = build_dataset(DataConfig(phantom_count=24, val_fraction=0.2, resolution=32), "val")
    assert len(rows) == 2 * len(val) and {r["mode"] for r in rows} == {"noise"} and rows[0]["name"].endswith("_0")
    assert {r["solver"] + r["nfe"] + r["cfg"] for r in rows} == {"euler22.0"}
    for row in rows:
        files = row["files"].split(";")
        assert [Path(f).name for f in files] == [f"{row['name']}_{s}.png" for s in ("flair", "t1", "t1ce", "t2")]
        for f in files:
            assert np.array_equal(_pixels(tmp_path / "a" / f), _pixels(tmp_path / "b" / f)), f
    assert [r["seed"] for r in rows] == [r["seed"] for r in _rows(tmp_path / "b")]
    assert len({r["seed"] for r in rows}) == len(rows) and (tmp_path / "a" / "grid.png").is_file()


def test_the_dataset_split_is_the_training_runs(tmp_path: Path, phantom_model: Path) -> None:
    args = ["sample", "--checkpoint", str(phantom_model), "--dataset", "val", "--nfe", "1", "--solver", "euler"]
    code, out = _run(*args, "--set", "data.split_seed=5", "--out", str(tmp_path / "a"))
    assert code == 1 and out.startswith("Error: "), out
    assert f"data.split_seed is 0 in {phantom_model} (its training data) but 5 in --config / --set" in out
    assert "Traceback" not in out and not (tmp_path / "a" / "manifest.csv").exists()
    (tmp_path / "c.yaml").write_text("data:\n  val_fraction: 0.3\n")
    code, out = _run(*args, "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "b"))
    assert code == 1 and "data.val_fraction is 0.2 in" in out and "but 0.3 in --config / --set" in out, out
    code, out = _run(*args, "--set", "data.split_seed=0", "--set", "data.root=/moved", "--limit", "1",
                     "--out", str(tmp_path / "c"))
    assert code == 0, out


def test_reference_mode_from_folders_blends_and_checks_inputs(tmp_path: Path, phantom_model: Path) -> None:
    masks, refs = tmp_path / "masks", tmp_path / "refs"
    masks.mkdir(), refs.mkdir()
    label = np.zeros((64, 64), np.uint8)  # at twice the model's size: resized like the loaders do
    label[20:30, 24:34], label[24:28, 28:30] = 2, 4
    Image.fromarray(label).save(masks / "lesion.png")
    reference = np.tile(np.linspace(-0.9, 0.9, 32, dtype=np.float32), (4, 32, 1))
    np.save(refs / "lesion.npy", reference)
    args = ["sample", "--checkpoint", str(phantom_model), "--masks", str(masks), "--mode", "reference",
            "--reference", str(refs), "--solver", "heun", "--nfe", "4", "--blend-dilation", "1"]
    code, out = _run(*args, "--out", str(tmp_path / "out"))
    assert code == 0, out
    (row,) = _rows(tmp_path / "out")
    assert row["start"] == "invert" and row["nfe_used"] == "8" and row["reference"].endswith("lesion.npy")
    region = lesion_region(read_mask_file(masks / "lesion.png", ("NCR", "ED", "ET"), 32)[None], 1)[0, 0].numpy()
    flair = _pixels(tmp_path / "out" / "images" / "lesion_flair.png")
    expected = np.round((reference[0] + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(flair[~region], expected[~region])
    assert "SSIM to the reference outside the lesion" in out and "unblended output" in out
    # the anatomy score is the model's: its unblended output (the same run without --blend-dilation), not the
    # blended image, which copies the reference outside the lesion (noised start: the 3-step model forgets it)
    noised = ["--start", "noise", "--t0", "0.5"]
    code, out = _run(*args, *noised, "--out", str(tmp_path / "noised"))
    assert code == 0, out
    code, out = _run(*args[:-2], *noised, "--out", str(tmp_path / "plain"))
    assert code == 0, out
    score, unblended = (float(_rows(tmp_path / d)[0]["ssim_outside_lesion_unblended"]) for d in ("noised", "plain"))
    files = [tmp_path / "noised" / "images" / f"lesion_{c}.png" for c in ("flair", "t1", "t1ce", "t2")]
    blended = torch.from_numpy(np.stack([_pixels(f) for f in files]).astype(np.float32) / 127.5 - 1)[None]
    keep = ~lesion_region(read_mask_file(masks / "lesion.png", ("NCR", "ED", "ET"), 32)[None], OUTSIDE_MARGIN)
    blended_score = float(masked_ssim(blended, torch.from_numpy(reference)[None], keep)[0])
    assert score == pytest.approx(unblended, abs=1e-6) and blended_score > 0.9 and blended_score - score > 0.5
    np.save(masks / "soft.npy", np.full((3, 32, 32), 0.5, np.float32))
    code, out = _run(*args, "--out", str(tmp_path / "bad"))
    assert code == 2 and "no reference named soft" in out
    code, out = _run("sample", "--checkpoint", str(phantom_model), "--masks", str(masks),
                     "--out", str(tmp_path / "bad"))
    assert code == 1 and "soft.npy" in out and "binary" in out
    (masks / "soft.npy").unlink()
    (tmp_path / "caps.csv").write_text("name,caption\nlesion,brain MRI with edema\n")
    code, out = _run(*args, "--captions", str(tmp_path / "caps.csv"), "--out", str(tmp_path / "cap"))
    assert code == 1 and "trained without captions" in out
    code, out = _run(*args[:-2], "--nfe", "3", "--out", str(tmp_path / "nfe"))
    assert code == 2 and "multiple of heun's 2" in out


def test_healthy_reference_of_the_same_subject_and_a_moved_teacher(tmp_path: Path, phantom_model: Path) -> None:
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(phantom_model, moved / "final.safetensors")
    teacher = phantom_model.parents[1] / "teacher" / "best.safetensors"
    shutil.move(teacher, tmp_path / "teacher.safetensors")
    try:
        args = ["sample", "--checkpoint", str(moved / "final.safetensors"), "--dataset", "val", "--limit", "2",
                "--mode", "reference", "--dataset-reference", "healthy", "--start", "noise", "--t0", "0.3",
                "--nfe", "2", "--solver", "euler"]
        code, out = _run(*args, "--out", str(tmp_path / "a"))
        assert code == 1 and str(teacher) in out and "--teacher" in out
        code, out = _run(*args, "--teacher", str(tmp_path / "teacher.safetensors"), "--out", str(tmp_path / "b"))
        assert code == 0, out
    finally:
        shutil.move(tmp_path / "teacher.safetensors", teacher)
    rows = _rows(tmp_path / "b")
    assert len(rows) == 2 and all(r["reference"] == r["condition"][:-1] + "0" for r in rows)  # phantom_X_s1 <- _s0
    assert {(r["start"], r["t0"]) for r in rows} == {("noise", "0.3")}


def _brats(root: Path) -> Path:
    """Two LPS cases of 40 x 32 x 8 voxels (flair, t1ce, seg) with an off-origin affine; tumour in slices 3-4."""
    x, y = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 32), indexing="ij")
    for n, case in enumerate(("BraTS2021_00001", "BraTS2021_00002")):
        folder = root / case
        folder.mkdir(parents=True)
        brain = np.zeros((40, 32, 8), bool)
        brain[:, :, 1:7] = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1)[:, :, None]
        rng = np.random.default_rng(n)
        for kind in ("flair", "t1ce"):
            vol = np.where(brain, rng.standard_normal(brain.shape) + x[:, :, None], -3.5).astype(np.float32)
            nib.save(nib.Nifti1Image(vol, AFFINE), folder / f"{case}_{kind}.nii.gz")
        seg = np.zeros(brain.shape, np.uint8)
        for z in (3, 4):
            seg[:, :, z] = np.select([np.hypot(x - 0.2, y) < r for r in (0.15, 0.3, 0.45)], [1, 4, 2], 0)
        nib.save(nib.Nifti1Image(seg, AFFINE), folder / f"{case}_seg.nii.gz")
    return root


def test_nifti_outputs_sit_on_the_source_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    root = _brats(tmp_path / "brats")
    data = ["data.name=brats2021", f"data.root={root}", "data.modalities=[flair,t1ce]", "data.resolution=32",
            "data.val_fraction=0.0", "data.test_fraction=0.0", "data.batch_size=2", "data.num_workers=0",
            "flow.dt_weights=[0,0,0,0]",
            "flow.reference=false", "train.warmup_steps=1", "train.val_every=100", "train.sample_every=100"]
    code, out = _run("train", *_sets(data, GEN), "--out", str(tmp_path / "run"))
    assert code == 0, out
    code, out = _run("sample", "--checkpoint", str(tmp_path / "run" / "final.safetensors"), "--dataset", "train",
                     "--nfe", "2", "--cfg", "2", "--cfg-caption", "3", "--out", str(tmp_path / "out"))
    assert code == 0, out
    rows = _rows(tmp_path / "out")
    assert len(rows) == 4 and rows[0]["caption"].startswith("brain MRI")
    code, out = _run("sample", "--checkpoint", str(tmp_path / "run" / "final.safetensors"), "--dataset", "train",
                     "--mode", "reference", "--dataset-reference", "healthy", "--nfe", "2",
                     "--out", str(tmp_path / "ref"))
    assert code == 0, out  # a generator without a reference path edits by inversion alone
    assert [r["reference"][-4:] for r in _rows(tmp_path / "ref")] == ["s002", "s005"] * 2  # the nearest healthy slice
    for row in rows:
        case, z = row["name"].split("_s")
        files = [tmp_path / "out" / f for f in row["files"].split(";") if f.endswith(".nii.gz")]
        assert [f.name for f in files] == [f"{row['name']}_{k}.nii.gz" for k in ("flair", "t1ce", "seg")]
        for f in files:
            img = nib.load(str(f))
            shifted = AFFINE.copy()
            shifted[:3, 3] += int(z) * AFFINE[:3, 2]
            assert img.shape == (40, 32, 1) and np.allclose(img.affine, shifted)
            assert np.allclose(img.header.get_qform(), shifted) or img.header["qform_code"] == 0
        assert set(np.unique(np.asarray(nib.load(str(files[2])).dataobj))) <= {0, 1, 2, 4}
    # the writer inverts the loader: a real slice written back and re-read is the same image
    ds = build_dataset(DataConfig(name="brats2021", root=str(root), modalities=["flair", "t1ce"], resolution=32,
                                  slices="tumour", augment=False, val_fraction=0.0), "train")
    sample = ds[0]
    paths = write_sample(sample["image"], sample["mask"], ds.records[0].paths, ds.channel_names, ds.class_names,
                         sample["slice_index"], tmp_path / "rt", "x")
    for c, path in enumerate(paths[:2]):
        view = slice_to_image(np.asarray(nib.load(str(path)).dataobj)[:, :, 0], nib.aff2axcodes(AFFINE))
        assert view.shape == (32, 40) and np.allclose(view[:, :4], -1)  # the crop margins are background
        assert np.allclose(view[:, 4:36], sample["image"][c].numpy(), atol=1e-6)
    seg = np.asarray(nib.load(str(paths[2])).dataobj)[:, :, 0]
    truth = np.asarray(nib.load(str(root / sample["subject_id"] / f"{sample['subject_id']}_seg.nii.gz")).dataobj)
    assert seg.any() and np.array_equal(seg, truth[:, :, sample["slice_index"]])  # the tumour lies inside the crop


def test_the_readme_and_help_count_heun_steps_as_the_solver_does() -> None:
    """``--nfe`` counts velocity evaluations; Heun makes 2 per step, so ``--nfe 8`` is 4 steps."""
    import re

    from meddtfm.flow.sampling import SolverSpec

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    nfe, steps = map(int, re.search(r"\(Heun, (\d+) evaluations = (\d+) steps", readme).groups())
    assert f"--solver heun --nfe {nfe}" in readme and len(SolverSpec("heun", nfe).times(0.0, 1.0)) - 1 == steps
    for command in ("sample", "evaluate"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert "8 is 4 steps" in text or "--nfe 8 is 4 Heun steps" in text, command
