import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from meddtfm.cli.main import cli
from meddtfm.config import DataConfig, GANConfig, to_dict
from meddtfm.evaluation import generation

from ..evaluation.conftest import segmenter_checkpoint

PHANTOMS = DataConfig(phantom_count=8, resolution=32, val_fraction=0.25, test_fraction=0.25, num_workers=0)
MRI = ["t1", "t1ce", "t2", "flair"]


def _folders(tmp_path, n: int = 4):
    """Real / two synthetic folders (the second noisier) of 32 px grey PNGs, and binary masks."""
    rng = np.random.default_rng(0)
    for name in ("real", "fake_a", "fake_b", "masks"):
        (tmp_path / name).mkdir()
    for i in range(n):
        real = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        Image.fromarray(real).save(tmp_path / "real" / f"case{i}.png")
        for folder, amp in (("fake_a", 20), ("fake_b", 80)):
            noisy = np.clip(real.astype(int) + rng.integers(-amp, amp + 1, real.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(tmp_path / folder / f"case{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[4:12, 4:12 + i] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"case{i}.png")
    return tmp_path


def test_folders_paired_and_dice(tmp_path):
    d = _folders(tmp_path)
    seg = segmenter_checkpoint(tmp_path / "unet.safetensors", ("gray",), ("lesion",))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["evaluate", "--real", str(d / "real"), "--fake", str(d / "fake_a"),
                                      "--fake", str(d / "fake_b"), "--masks", str(d / "masks"), "--segmenter", str(seg),
                                      "--metrics", "paired,dice", "--batch-size", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["runs"]) == ["fake_a", "fake_b"]
    assert doc["runs"]["fake_a"]["ssim/gray"] > doc["runs"]["fake_b"]["ssim/gray"]
    assert doc["summary"]["psnr/mean"]["n"] == 2 and doc["summary"]["psnr/mean"]["std"] > 0
    assert set(doc["reference"]) == {f"{m}/{c}" for m in ("dice", "iou", "dice_present", "iou_present")
                                     for c in ("lesion", "mean")}
    assert "dice/lesion" in doc["runs"]["fake_b"] and "dice_present/mean" in doc["runs"]["fake_b"]
    assert doc["settings"]["counts"]["fake_a"] == {"real": 4, "fake": 4, "pairs": 4}
    assert "| ssim/mean |" in result.output and (out / "samples_fake_a.png").is_file()


def test_folders_brats_regions_with_label_maps(tmp_path):
    """BraTS label maps (classes.txt 1 NCR, 2 ED, 4 ET): region Dice / HD95 per run and on the real images."""
    d = _folders(tmp_path)
    for path in (d / "masks").glob("*.png"):
        label = np.where(np.asarray(Image.open(path)) > 0, 2, 0).astype(np.uint8)
        label[6:10, 6:10] = 4
        label[7:9, 7:9] = 1
        Image.fromarray(label).save(path)
    (d / "masks" / "classes.txt").write_text("1 NCR\n2 ED\n4 ET\n")
    seg = segmenter_checkpoint(tmp_path / "unet.safetensors", ("gray",), ("NCR", "ED", "ET"))
    out = tmp_path / "out"
    args = ["evaluate", "--real", str(d / "real"), "--fake", str(d / "fake_a"), "--masks", str(d / "masks"),
            "--metrics", "paired,brats_regions", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "brats_regions need --segmenter FILE" in result.output
    result = CliRunner().invoke(cli, [*args, "--segmenter", str(seg)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    keys = {f"{m}_{r}/{s}" for m in ("dice", "hd95") for r in ("wt", "tc", "et") for s in ("mean",)}
    assert keys <= set(doc["runs"]["fake_a"]) and keys <= set(doc["reference"])
    assert doc["runs"]["fake_a"]["dice_wt/images"] == 4 and "| dice_wt/mean |" in result.output


def test_missing_requirements_are_all_named(tmp_path):
    d = _folders(tmp_path, n=2)
    result = CliRunner().invoke(cli, ["evaluate", "--real", str(d / "real"), "--fake", str(d / "fake_a"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--segmenter" in result.output and "--masks" in result.output
    assert "pt_inception-2015-12-05-6726825d.pth" in result.output and "--inception-weights" in result.output


def test_ukan_teacher_never_scores(tmp_path):
    d = _folders(tmp_path, n=2)
    ukan = segmenter_checkpoint(tmp_path / "ukan.safetensors", ("gray",), ("lesion",), model="ukan")
    result = CliRunner().invoke(cli, ["evaluate", "--real", str(d / "real"), "--fake", str(d / "fake_a"),
                                      "--masks", str(d / "masks"), "--segmenter", str(ukan), "--metrics", "dice",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "teacher" in result.output and "--model unet" in result.output


def test_modes_are_exclusive(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--checkpoint FILE" in result.output


def _stub_generator(monkeypatch, data: DataConfig, calls: list | None = None) -> None:
    """``load_generate`` returns a stand-in trained on ``data`` that gives back the paired target."""
    def fake_load(path, sample_mode, device, **sampling):
        def generate(batch, seed):
            if calls is not None:
                calls.append(seed)
            return batch["reference"] if sample_mode == "reference" else batch["image"]
        return generate, {"model": "stub", "mode": sample_mode, "data": to_dict(data),
                          "channel_names": MRI, "class_names": ["NCR", "ED", "ET"]}

    monkeypatch.setattr(generation, "load_generate", fake_load)


@pytest.mark.parametrize("mode", ["noise", "reference"])
def test_checkpoint_mode_over_seeds(tmp_path, monkeypatch, mode):
    """Mode B wiring with a stand-in generator that returns the paired target: SSIM 1, PSNR inf, per seed."""
    calls = []
    _stub_generator(monkeypatch, dataclasses.replace(PHANTOMS, test_fraction=0.5, split_seed=3), calls)
    (tmp_path / "g.safetensors").write_bytes(b"")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(tmp_path / "g.safetensors"), "--seeds", "0, 1",
                                      "--mode", mode, "--metrics", "paired", "--set", "data.test_fraction=0.5",
                                      "--set", "data.split_seed=3", "--set", "data.root=/moved/elsewhere",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["runs"]) == ["seed0", "seed1"] and sorted(set(calls)) == [0, 1]
    assert doc["summary"]["ssim/mean"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert doc["runs"]["seed1"]["psnr/flair"] == "inf"
    assert doc["settings"]["split"] == "test" and doc["settings"]["split_seed"] == 3
    assert doc["settings"]["samples"] == 4 and doc["settings"]["data"]["test_fraction"] == 0.5
    assert ("reference mode" in " ".join(doc["notes"])) == (mode == "reference")


@pytest.mark.parametrize("key, value, recorded", [("split_seed", "3", "0"), ("val_fraction", "0.5", "0.25"),
                                                   ("test_fraction", "0.1", "0.25")])
def test_a_split_override_that_differs_from_the_checkpoint_is_refused(tmp_path, monkeypatch, key, value, recorded):
    _stub_generator(monkeypatch, PHANTOMS)
    (tmp_path / "g.safetensors").write_bytes(b"")
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(tmp_path / "g.safetensors"), "--metrics",
                                      "paired", "--set", f"data.{key}={value}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert f"data.{key} is {recorded} in {tmp_path / 'g.safetensors'} (its training data) but {value}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "metrics.json").exists()


def test_a_segmenter_trained_on_another_split_is_refused(tmp_path, monkeypatch):
    _stub_generator(monkeypatch, PHANTOMS)
    (tmp_path / "g.safetensors").write_bytes(b"")
    seg = segmenter_checkpoint(tmp_path / "unet.safetensors", MRI, ("NCR", "ED", "ET"),
                               data=dataclasses.replace(PHANTOMS, split_seed=7))
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(tmp_path / "g.safetensors"), "--metrics", "dice",
                                      "--segmenter", str(seg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert f"data.split_seed is 7 in the evaluation U-Net {seg} but 0 in the evaluated data" in result.output
    seg = segmenter_checkpoint(tmp_path / "same.safetensors", MRI, ("NCR", "ED", "ET"), data=PHANTOMS)
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(tmp_path / "g.safetensors"), "--metrics", "dice",
                                      "--segmenter", str(seg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


def test_pix2pixhd_checkpoint_is_sampled(tmp_path):
    from meddtfm.checkpoint import save_weights
    from meddtfm.training.gan import build_baseline

    gc = GANConfig()
    gc.pix2pixhd.ngf, gc.pix2pixhd.n_blocks_global, gc.pix2pixhd.n_downsample_global = 4, 1, 1
    net = build_baseline("pix2pixhd", gc, 4, 3)
    meta = {"model": "pix2pixhd", "gan": to_dict(gc), "image_channels": 4, "mask_classes": 3, "text": None,
            "channel_names": MRI, "class_names": ["NCR", "ED", "ET"], "tokenizer": None, "data": to_dict(PHANTOMS)}
    path = save_weights(net.state_dict(), tmp_path / "p2p.safetensors", meta)
    _, info = generation.load_generate(path, "noise", torch.device("cpu"))
    assert info["deterministic"] and info["channel_names"] == MRI
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(path), "--seeds", "0,1", "--metrics", "paired",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"]["ssim/mean"]["std"] == pytest.approx(0.0) and "deterministic" in " ".join(doc["notes"])
    with pytest.raises(ValueError, match="reference mode"):
        generation.load_generate(path, "reference", torch.device("cpu"))
