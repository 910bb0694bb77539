"""``meddtfm augment`` end to end on MRI phantoms: the folder layout a segmenter trains on, resume, reference mode,
the quality filter, any generator, and bad input named."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from meddtfm.augmentation import AugmentFolder, AugmentSpec, MaskVariation, augment, dataset_sources
from meddtfm.augmentation.folder import FIELDS
from meddtfm.checkpoint import save_weights
from meddtfm.cli.main import cli
from meddtfm.config import DataConfig, GANConfig, to_dict
from meddtfm.data import build_dataset
from meddtfm.evaluation.generation import load_generate
from meddtfm.training.gan import build_baseline

from ..evaluation.conftest import segmenter_checkpoint

DATA = ["data.phantom_count=12", "data.val_fraction=0.25", "data.test_fraction=0.25", "data.resolution=32",
        "data.batch_size=4", "data.num_workers=0", "data.modalities=[flair]", "train.warmup_steps=1",
        "train.val_every=100", "train.checkpoint_every=100", "train.sample_every=100", "train.steps=2"]
GEN = ["generator.base_channels=8", "generator.cond_channels=[8,8,8,8]", "generator.text_dim=16",
       "generator.time_dim=16", "generator.num_res_blocks=1", "generator.attention_at_bottleneck=false",
       "flow.adv_weight=0", "flow.val_batches=1", "flow.dt_weights=[0,0,0,0]", "flow.reference=false"]
PHANTOMS = DataConfig(phantom_count=12, val_fraction=0.25, test_fraction=0.25, resolution=32, batch_size=4,
                      num_workers=0, modalities=["flair"])
FAST = ["--nfe", "2", "--solver", "euler"]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (repr(result.exception) if result.exit_code else "")


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _folder(out: Path, request: dict, info: dict) -> AugmentFolder:
    return AugmentFolder(out, request, info["class_names"], info["channel_names"])


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for sub in ("images", "masks")
            for p in sorted((out / sub).iterdir())}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step flow (no teacher) on 1-channel MRI phantoms with NCR / ED / ET."""
    root = tmp_path_factory.mktemp("augment-flow")
    code, out = _run("train", *[a for o in DATA + GEN for a in ("--set", o)], "--out", str(root))
    assert code == 0, out
    return root / "final.safetensors"


def test_the_folder_is_a_dataset_of_varied_masks_with_its_manifest(tmp_path, flow):
    out = tmp_path / "aug"
    code, log = _run("augment", "--checkpoint", str(flow), "--count", "7", "--batch-size", "3", "--vary",
                     "flip,rotate=15,scale=0.1,shift", *FAST, "--out", str(out))
    assert code == 0, log
    assert "wrote 7 images" in log and "images/min" in log
    rows = _rows(out)
    train = build_dataset(PHANTOMS, "train")
    assert [r["name"] for r in rows] == [f"syn{i:06d}" for i in range(7)]
    assert [r["source"] for r in rows] == [train.records[i % len(train)].sample_id for i in range(7)]
    assert {r["kept"] for r in rows} == {"yes"}
    assert {r["model"] + r["mode"] + r["nfe"] for r in rows} == {"meddtfmnoise2"}
    assert any(r["varied"] == "yes" for r in rows) and len({r["seed"] for r in rows}) == 7
    synthetic = build_dataset(DataConfig(name="folder", root=str(out), resolution=32, val_fraction=0, test_fraction=0),
                              "all")
    assert len(synthetic) == 7 and synthetic.class_names == ("NCR", "ED", "ET") and synthetic.channel_names == ("gray",)
    sample = synthetic[0]
    assert sample["image"].shape == (1, 32, 32) and bool(sample["has_mask"]) and sample["mask"].sum() > 0
    with open(out / "captions.csv", newline="") as fh:
        assert [r["subject"] for r in csv.DictReader(fh)] == [r["subject"] for r in rows]
    varied = [r for r in rows if r["varied"] == "yes"][0]
    real = train[[x.sample_id for x in train.records].index(varied["source"])]["mask"]
    assert not torch.equal(synthetic[rows.index(varied)]["mask"], real), "a varied mask is not the real one"


def test_a_resumed_folder_holds_exactly_the_files_of_an_uninterrupted_one(tmp_path, flow):
    generate, info = load_generate(flow, "noise", torch.device("cpu"), nfe=2, solver="euler")
    sources = dataset_sources(PHANTOMS, "train", (("flair",), ("NCR", "ED", "ET"), 32))
    spec = AugmentSpec(count=7, chunk_size=3, variation=MaskVariation.parse("flip,shift"))
    request, settings = {"spec": str(spec)}, {"model": "meddtfm", "mode": "noise", "nfe": 2, "solver": "euler",
                                              "cfg": 2.0, "checkpoint": str(flow)}
    whole = augment(generate, settings, sources, spec, _folder(tmp_path / "a", request, info))
    calls = []

    def dies_at_the_second_chunk(batch, seed):
        calls.append(len(batch["sample_id"]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(batch, seed)

    with pytest.raises(KeyboardInterrupt):
        augment(dies_at_the_second_chunk, settings, sources, spec,
                _folder(tmp_path / "b", request, info))
    assert len(_rows(tmp_path / "b")) == 3, "the first chunk finished"
    resumed = augment(generate, settings, sources, spec, _folder(tmp_path / "b", request, info))
    assert (whole.written, whole.drawn, resumed.drawn) == (7, 7, 4), "the rerun drew only the unfinished chunks"
    assert _files(tmp_path / "b") == _files(tmp_path / "a")
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")
    again = augment(generate, settings, sources, spec, _folder(tmp_path / "b", request, info))
    assert again.drawn == 0 and again.written == 7


def test_a_rerun_with_other_settings_is_refused(tmp_path, flow):
    args = ["augment", "--checkpoint", str(flow), "--count", "2", *FAST, "--out", str(tmp_path)]
    assert _run(*args)[0] == 0
    code, log = _run(*args[:-2], "--vary", "flip", "--out", str(tmp_path))
    assert code == 2 and "holds images of another request (variation differ)" in log, log


def test_reference_mode_inserts_the_lesion_into_a_healthy_slice_of_its_subject(tmp_path, flow):
    code, log = _run("augment", "--checkpoint", str(flow), "--count", "3", "--mode", "reference", "--vary", "shift",
                     *FAST, "--out", str(tmp_path))
    assert code == 0, log
    rows = _rows(tmp_path)
    assert all(r["reference"] == r["subject"] + "_s0" for r in rows), "slice 0 is the subject's healthy slice"
    assert {r["mode"] for r in rows} == {"reference"}


def test_the_quality_filter_drops_and_counts_with_the_independent_unet(tmp_path, flow):
    seg = segmenter_checkpoint(tmp_path / "unet.safetensors", ["flair"], ["NCR", "ED", "ET"], data=PHANTOMS)
    args = ["augment", "--checkpoint", str(flow), "--count", "3", *FAST, "--segmenter", str(seg)]
    code, log = _run(*args, "--min-dice", "0", "--out", str(tmp_path / "all"))
    assert code == 0 and "0 dropped" in log, log
    assert all(0 <= float(r["dice"]) <= 1 for r in _rows(tmp_path / "all"))
    code, log = _run(*args, "--min-dice", "1", "--out", str(tmp_path / "none"))
    assert code == 1 and "only 0 of 3 images passed the quality filter (Dice >= 1.0) in 12 candidates" in log, log
    assert {r["kept"] for r in _rows(tmp_path / "none")} == {"dropped"}
    assert not list((tmp_path / "none" / "images").iterdir())
    code, log = _run(*args[:-2], "--min-dice", "0.5", "--out", str(tmp_path / "x"))
    assert code == 2 and "needs both --min-dice and --segmenter" in log


def test_a_gan_baseline_is_a_generator_too(tmp_path):
    path = _pix2pixhd(tmp_path / "p2p.safetensors", ["flair"], PHANTOMS)
    code, log = _run("augment", "--checkpoint", str(path), "--count", "2", "--out", str(tmp_path / "out"))
    assert code == 0, log
    assert {r["model"] + r["nfe"] for r in _rows(tmp_path / "out")} == {"pix2pixhd"}, "a one-pass model has no NFE"
    assert Image.open(tmp_path / "out" / "images" / "syn000000.png").size == (32, 32)
    code, log = _run("augment", "--checkpoint", str(path), "--count", "2", "--mode", "reference",
                     "--out", str(tmp_path / "ref"))
    assert code == 1 and "reference mode is for Med-DT-FM only" in log


def _pix2pixhd(path: Path, channels: list[str], data: DataConfig) -> Path:
    """A tiny untrained pix2pixHD for ``channels`` and NCR / ED / ET: a one-pass generator for ``augment``."""
    gc = GANConfig()
    gc.pix2pixhd.ngf, gc.pix2pixhd.n_blocks_global, gc.pix2pixhd.n_downsample_global = 4, 1, 1
    meta = {"model": "pix2pixhd", "gan": to_dict(gc), "image_channels": len(channels), "mask_classes": 3,
            "text": None, "channel_names": channels, "class_names": ["NCR", "ED", "ET"], "tokenizer": None,
            "data": to_dict(data)}
    return save_weights(build_baseline("pix2pixhd", gc, len(channels), 3).state_dict(), path, meta)


def test_four_sequence_brats_images_are_written_as_nifti_that_trains_as_a_folder(tmp_path):
    sequences = ["flair", "t1", "t1ce", "t2"]
    data = dataclasses.replace(PHANTOMS, modalities=sequences)
    path = _pix2pixhd(tmp_path / "p2p4.safetensors", sequences, data)
    out = tmp_path / "out"
    code, log = _run("augment", "--checkpoint", str(path), "--count", "3", "--set", "data.modalities=" +
                     "[" + ",".join(sequences) + "]", "--out", str(out))
    assert code == 0, log
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"syn00000{i}.nii.gz" for i in range(3)]
    assert (out / "channels.txt").read_text().split() == sequences
    assert (out / "classes.txt").read_text().splitlines() == ["1 NCR", "2 ED", "4 ET"], "BraTS's own label values"
    image = nib.load(str(out / "images" / "syn000000.nii.gz"))
    seg = nib.load(str(out / "masks" / "syn000000.nii.gz"))
    assert image.shape == (32, 32, 4) and image.get_data_dtype() == np.float32
    assert seg.shape == (32, 32) and seg.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4} and np.asarray(seg.dataobj).max() > 0
    synthetic = build_dataset(DataConfig(name="folder", root=str(out), resolution=32, val_fraction=0,
                                         test_fraction=0), "all")
    assert synthetic.channel_names == tuple(sequences) and synthetic.class_names == ("NCR", "ED", "ET")
    assert np.allclose(synthetic[0]["image"].numpy(), np.asarray(image.dataobj).transpose(2, 0, 1)), "as written"
    train = build_dataset(dataclasses.replace(data, augment=False), "train")
    ids = [r.sample_id for r in train.records]
    for k, row in enumerate(_rows(out)):
        real = train[ids.index(row["source"])]["mask"]
        assert torch.equal(synthetic[k]["mask"], real), "no --vary: each image's mask is its real source mask"
    real_train = build_dataset(dataclasses.replace(data, extra_train=[str(out)]), "train")
    assert len(real_train) == len(train) + 3, "the synthetic NIfTI folder joins a four-sequence training split"


def test_a_one_class_folder_keeps_the_class_name_that_extra_train_checks(tmp_path):
    """LGG's class is "FLAIR abnormality": a folder without classes.txt would read as "lesion" and be refused by
    ``data.extra_train`` (found by the first cpu utility run)."""
    folder = AugmentFolder(tmp_path / "one", {"r": 1}, ["FLAIR abnormality"], ["gray"])
    rows = [{"name": f"syn{i:06d}", "chunk": 0, "caption": "", "subject": f"s{i}", "kept": "yes"} for i in range(2)]
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:5, 2:5] = 1
    folder.write_chunk([{k: r.get(k, "") for k in FIELDS} for r in rows], [torch.zeros(1, 8, 8)] * 2, [mask] * 2)
    assert (tmp_path / "one" / "classes.txt").read_text() == "255 FLAIR abnormality\n"
    assert set(np.unique(np.asarray(Image.open(tmp_path / "one" / "masks" / "syn000000.png")))) == {0, 255}
    synthetic = build_dataset(DataConfig(name="folder", root=str(tmp_path / "one"), resolution=8, val_fraction=0,
                                         test_fraction=0), "all")
    assert synthetic.class_names == ("FLAIR abnormality",) and torch.equal(synthetic[0]["mask"], mask)


def test_bad_inputs_are_named(tmp_path, flow):
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "broken.png").write_bytes(b"not a png")
    code, log = _run("augment", "--checkpoint", str(flow), "--count", "1", "--masks", str(masks), *FAST,
                     "--out", str(tmp_path / "a"))
    assert code == 1 and "broken.png" in log, log
    code, log = _run("augment", "--checkpoint", str(flow), "--count", "1", "--set", "data.resolution=64", *FAST,
                     "--out", str(tmp_path / "b"))
    assert code == 2 and str(flow) in log and "trained on" in log and "32 px" in log, log
    code, log = _run("augment", "--checkpoint", str(flow), "--count", "1", "--vary", "twist", "--out",
                     str(tmp_path / "c"))
    assert code == 2 and "unknown mask variation 'twist'" in log
