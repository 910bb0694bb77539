"""``MedDTFMPipeline``: loading every form of checkpoint, inputs of every type, checks, saving one folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from meddtfm import InputError, MedDTFMPipeline, Pipeline
from meddtfm.checkpoint import CheckpointError, save_weights
from meddtfm.config import DataConfig, GANConfig, to_dict
from meddtfm.flow.sampling import Guidance, SolverSpec
from meddtfm.synthesis import load_generator
from meddtfm.training.gan import build_baseline


@pytest.fixture(scope="module")
def pipe(tiny_flow_run: Path) -> MedDTFMPipeline:
    return MedDTFMPipeline.from_pretrained(tiny_flow_run)


def _label_map() -> np.ndarray:
    labels = np.zeros((32, 32), np.uint8)
    labels[8:20, 10:22], labels[12:16, 14:18] = 2, 3
    return labels


def test_it_is_the_synthesizer_of_meddtfm_sample(pipe: MedDTFMPipeline, tiny_flow_run: Path) -> None:
    assert Pipeline is MedDTFMPipeline and pipe.kind == "meddtfm" and pipe.weights.name == "final.safetensors"
    assert (pipe.resolution, pipe.channel_names, pipe.class_names) == (32, ("flair",), ("NCR", "ED", "ET"))
    out = pipe(masks=_label_map(), nfe=4, cfg=1.5, seed=[7, 8])
    net, meta = load_generator(tiny_flow_run / "final.safetensors", need_teacher=False)
    masks = torch.from_numpy(np.stack([_label_map() == k for k in (1, 2, 3)])).float()[None].expand(2, -1, -1, -1)
    direct = pipe.synthesizer(SolverSpec("heun", 4), Guidance(1.5, 1.5)).noise_based([7, 8], masks).x
    assert torch.equal(out.images, direct) and out.nfe == 4 and out.seeds == [7, 8]
    assert out.images.shape == (2, 1, 32, 32) and out.numpy().dtype == np.float32
    assert [im.size for im in out.to_pil()] == [(32, 32)] * 2 and out.to_pil("flair")[0].mode == "L"
    assert out.overlays()[0].mode == "RGB" and not torch.equal(out.images[0], out.images[1])


def test_masks_as_tensor_array_pil_file_and_list_agree(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    labels = _label_map()
    Image.fromarray(labels).save(tmp_path / "m.png")
    np.save(tmp_path / "m.npy", labels)
    one_hot = np.stack([labels == k for k in (1, 2, 3)])
    forms = [labels, torch.from_numpy(one_hot), one_hot[None], Image.fromarray(labels), str(tmp_path / "m.png"),
             tmp_path / "m.npy"]
    images = [pipe(masks=form, nfe=2, seed=3).images for form in forms]
    assert all(torch.equal(images[0], x) for x in images[1:])
    batch = pipe(masks=[labels, tmp_path / "m.png"], nfe=2, seed=3)
    assert batch.images.shape[0] == 2  # same mask and seed; a batch of 2 may round differently from one of 1
    torch.testing.assert_close(batch.images[:1], images[0], rtol=0, atol=1e-5)
    assert pipe(masks=labels, nfe=2, seed=0, num_images=3).images.shape[0] == 3, "one mask for every sample"


@pytest.mark.parametrize(("masks", "message"), [
    (np.zeros((64, 64), np.uint8), r"the mask is 64 x 64 px; this model makes 32 x 32 images: pass resize=True"),
    (np.full((32, 32), 7), r"label values \[7\] are not 0..3 \(NCR, ED, ET\)"),
    (np.zeros((2, 32, 32)), r"mask of shape \(2, 32, 32\): expected binary 3 x H x W"),
    (np.full((3, 32, 32), 0.4), r"mask is not binary: values \[0.4"),
    (np.zeros((5000, 10), np.uint8), r"4096 px"),
])
def test_bad_masks_are_named(pipe: MedDTFMPipeline, masks: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        pipe(masks=masks)


def test_resize_fits_another_size(pipe: MedDTFMPipeline) -> None:
    labels = np.kron(_label_map(), np.ones((2, 2), np.uint8))  # 64 x 64, the same lesion
    assert torch.equal(pipe(masks=labels, resize=True, nfe=2).images, pipe(masks=_label_map(), nfe=2).images)


def test_references_and_their_checks(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    grey = (np.arange(32 * 32).reshape(32, 32) % 200).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_rgb.png")
    a = pipe(masks=_label_map(), reference=tmp_path / "grey.png", nfe=2)
    b = pipe(masks=_label_map(), reference=str(tmp_path / "grey_rgb.png"), nfe=2)
    c = pipe(masks=_label_map(), reference=torch.from_numpy(grey / 127.5 - 1).float()[None], nfe=2)
    assert torch.equal(a.images, b.images) and torch.allclose(a.images, c.images, atol=1e-5)
    assert a.references.shape == (1, 1, 32, 32) and a.differences()[0].size == (32, 32)
    colour = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=r"colour \(RGB\) image; this model takes one channel \(flair\)"):
        pipe(masks=_label_map(), reference=Image.fromarray(colour))
    with pytest.raises(InputError, match=r"finite and scaled to \[-1, 1\]"):
        pipe(masks=_label_map(), reference=torch.full((1, 32, 32), 3.0))
    with pytest.raises(InputError, match=r"shape \(4, 32, 32\); this model takes 1 x H x W"):
        pipe(masks=_label_map(), reference=np.zeros((4, 32, 32), np.float32))


def test_counts_captions_and_settings_are_checked(pipe: MedDTFMPipeline) -> None:
    with pytest.raises(InputError, match="3 samples asked for, but got 2 masks"):
        pipe(masks=[_label_map()] * 2, seed=[0, 1, 2])
    with pytest.raises(InputError, match="trained without captions; got 'a tumour'"):
        pipe(masks=_label_map(), captions="a tumour")
    with pytest.raises(InputError, match="nfe=3"):
        pipe(masks=_label_map(), nfe=3)


def test_save_pretrained_is_one_self_contained_folder(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    folder = pipe.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generator.safetensors", "model_card.md",
                                                        "teacher.safetensors"]
    moved = shutil.move(str(folder), tmp_path / "elsewhere")  # the folder is all it needs
    again = MedDTFMPipeline.from_pretrained(moved)
    assert again.supports_reference and json.loads((Path(moved) / "config.json").read_text())["model"] == "meddtfm"
    for reference in (None, np.full((32, 32), 90, np.uint8)):
        assert torch.equal(again(masks=_label_map(), reference=reference, nfe=2, seed=5).images,
                           pipe(masks=_label_map(), reference=reference, nfe=2, seed=5).images)
    card = (Path(moved) / "model_card.md").read_text()
    for text in ("# Med-DT-FM pipeline", "| name | phantoms |", "| resolution | 32 |", "| steps_trained | 3 |",
                 "| batch_size | 4 |", "| fm_loss |", "from_pretrained"):
        assert text in card, text
    assert again.save_pretrained(tmp_path / "resaved") and "| fm_loss |" in (tmp_path / "resaved" / "model_card.md"
                                                                          ).read_text()


def test_a_missing_teacher_only_stops_reference_mode(tiny_flow_run: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    shutil.copy(tiny_flow_run / "final.safetensors", tmp_path / "run" / "final.safetensors")
    teacher = tiny_flow_run.parent / "teacher" / "best.safetensors"
    hidden = teacher.rename(teacher.with_suffix(".hidden"))
    try:
        pipe = MedDTFMPipeline.from_pretrained(tmp_path / "run" / "final.safetensors")
        assert not pipe.supports_reference and pipe(masks=_label_map(), nfe=2).images.shape == (1, 1, 32, 32)
        with pytest.raises(InputError, match="reference-guided synthesis needs its U-KAN teacher.*teacher=FILE"):
            pipe(masks=_label_map(), reference=np.zeros((32, 32), np.uint8))
        with pytest.raises(CheckpointError, match="does not exist"):
            MedDTFMPipeline.from_pretrained(tmp_path / "run", need_teacher=True)
        assert MedDTFMPipeline.from_pretrained(tmp_path / "run", teacher=hidden).supports_reference
    finally:
        hidden.rename(teacher)
    with pytest.raises(CheckpointError, match="neither a saved pipeline"):
        MedDTFMPipeline.from_pretrained(tmp_path)


def test_a_gan_baseline_behind_the_same_call(tmp_path: Path) -> None:
    gc = GANConfig()
    gc.pix2pixhd.ngf, gc.pix2pixhd.n_blocks_global, gc.pix2pixhd.n_downsample_global = 4, 1, 1
    meta = {"model": "pix2pixhd", "gan": to_dict(gc), "image_channels": 1, "mask_classes": 3, "text": None,
            "channel_names": ["flair"], "class_names": ["NCR", "ED", "ET"], "tokenizer": None,
            "data": to_dict(DataConfig(resolution=32))}
    save_weights(build_baseline("pix2pixhd", gc, 1, 3).state_dict(), tmp_path / "run" / "final.safetensors", meta)
    gan = MedDTFMPipeline.from_pretrained(tmp_path / "run")
    out = gan(masks=[_label_map()] * 2, seed=[0, 1])
    assert gan.kind == "pix2pixhd" and out.nfe == 0 and torch.equal(out.images[0], out.images[1]), "deterministic"
    with pytest.raises(InputError, match="reference-guided synthesis needs a Med-DT-FM model"):
        gan(masks=_label_map(), reference=np.zeros((32, 32), np.uint8))
    saved = MedDTFMPipeline.from_pretrained(gan.save_pretrained(tmp_path / "saved"))
    assert torch.equal(saved(masks=_label_map()).images, gan(masks=_label_map()).images)
    assert not (tmp_path / "saved" / "teacher.safetensors").exists()


def test_a_caption_model_on_rgb_dermoscopy(tiny_caption_run: Path) -> None:
    pipe = MedDTFMPipeline.from_pretrained(tiny_caption_run)
    assert pipe.uses_captions and pipe.channel_names == ("R", "G", "B") and pipe.class_names == ("lesion",)
    lesion = np.zeros((32, 32), np.uint8)
    lesion[8:24, 8:24] = 255  # a 0/255 image mask, as ISIC ships them
    out = pipe(masks=Image.fromarray(lesion), captions=["melanoma", ""], nfe=2, seed=4)
    direct = pipe.synthesizer(SolverSpec("heun", 2), Guidance(2.0, 2.0)).noise_based(
        [4, 5], torch.from_numpy(lesion[None, None] / 255).float().expand(2, -1, -1, -1), ["melanoma", ""]).x
    assert torch.equal(out.images, direct) and out.to_pil()[0].mode == "RGB"
    colour = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert pipe(masks=lesion, captions="nevus", reference=colour, nfe=2).images.shape == (1, 3, 32, 32)
    with pytest.raises(InputError, match="greyscale image; this model takes colour"):
        pipe(masks=lesion, reference=np.zeros((32, 32), np.uint8))
