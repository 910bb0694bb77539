"""One Generate press of the demo without a browser or Gradio: masks from files or drawings, references, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meddtfm.app import healthy_slices, run
from meddtfm.app.requests import UPLOADED, Request, drawn_mask, reference_preview
from meddtfm.pipeline import InputError, MedDTFMPipeline


@pytest.fixture(scope="module")
def pipe(tiny_flow_run: Path) -> MedDTFMPipeline:
    return MedDTFMPipeline.from_pretrained(tiny_flow_run)


def _drawing(classes: int = 3, painted: int = 1) -> dict:
    layers = [np.zeros((256, 256, 4), np.uint8) for _ in range(classes)]
    layers[painted][64:128, 64:160, :] = (230, 60, 60, 255)
    return {"background": np.zeros((256, 256, 3), np.uint8), "layers": layers, "composite": None}


def test_a_drawn_layer_is_its_class() -> None:
    mask = drawn_mask(_drawing(painted=1), ("NCR", "ED", "ET"))
    assert mask.shape == (3, 256, 256) and mask[1].sum() == 64 * 96 and mask[0].sum() == mask[2].sum() == 0
    assert drawn_mask(_drawing(classes=1, painted=0), ("NCR", "ED", "ET")).shape == (3, 256, 256), "missing layers: 0"
    assert drawn_mask({"layers": [np.zeros((8, 8, 4), np.uint8)]}, ("lesion",)) is None
    assert drawn_mask(None, ("lesion",)) is None


def test_upload_or_drawing_gives_a_png_at_the_models_size(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    labels = np.zeros((64, 64), np.uint8)
    labels[16:40, 20:44] = 2
    Image.fromarray(labels).save(tmp_path / "mask.png")
    steps: list[float] = []
    result = run(pipe, Request(mask_file=str(tmp_path / "mask.png"), nfe=4, seed=1), {}, tmp_path / "out",
                 lambda fraction, text: steps.append(fraction))
    assert Image.open(result.png).size == (32, 32) and result.sample.shape == (32, 32)
    assert result.overlay.shape == (32, 32, 3) and result.difference is None and steps[-1] == 1.0 and len(steps) == 4
    assert result.status.startswith("noise-based, seed 1, 4 velocity evaluations")
    drawn = run(pipe, Request(drawing=_drawing(), nfe=2), {}, tmp_path / "out")
    assert drawn.sample.shape == (32, 32)


def test_reference_mode_from_a_healthy_slice(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    healthy = healthy_slices(pipe, 2)
    assert len(healthy) == 2 and all(v.shape == (1, 32, 32) for v in healthy.values())
    name = next(iter(healthy))
    request = Request(drawing=_drawing(), reference=name, nfe=2)
    result = run(pipe, request, healthy, tmp_path)
    assert result.difference.shape == (32, 32) and result.status.startswith("reference-guided")
    assert reference_preview(pipe, request, healthy).shape == (32, 32, 3)
    assert reference_preview(pipe, Request(), healthy) is None


@pytest.mark.parametrize(("request_args", "message"), [
    ({}, "no mask: upload a mask file or draw a lesion"),
    ({"mask_file": "EMPTY"}, "the mask is empty: it has no lesion pixel"),
    ({"mask_file": "MASK", "resize": False}, r"mask.png is 64 x 64 px; this model makes 32 x 32"),
    ({"mask_file": "MASK", "reference": UPLOADED}, "upload a reference slice, or pick a healthy one"),
    ({"mask_file": "MASK", "reference": UPLOADED, "reference_file": "RGB"},
     r"^rgb.png is a colour \(RGB\) image; this model takes one channel \(flair\)"),
])
def test_bad_inputs_are_explained(pipe: MedDTFMPipeline, tmp_path: Path, request_args: dict, message: str) -> None:
    files = {"EMPTY": np.zeros((32, 32), np.uint8), "MASK": np.pad(np.ones((8, 8), np.uint8), 28),
             "RGB": np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)}
    for key, array in files.items():
        Image.fromarray(array).save(tmp_path / f"{key.lower()}.png")
    args = {k: str(tmp_path / f"{v.lower()}.png") if v in files else v for k, v in request_args.items()}
    with pytest.raises(InputError, match=message):
        run(pipe, Request(**args), {}, tmp_path)


def test_a_huge_upload_is_refused(pipe: MedDTFMPipeline, tmp_path: Path) -> None:
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((3, 1024, 1024), np.float32))  # 12 MB
    with pytest.raises(InputError, match=r"big.npy is 12.0 MB; the largest upload is 10 MB"):
        run(pipe, Request(mask_file=str(big)), {}, tmp_path)


def test_a_caption_model_takes_the_caption(tiny_caption_run: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = MedDTFMPipeline.from_pretrained(tiny_caption_run)
    seen: list = []
    sample = pipe.model.sample
    monkeypatch.setattr(pipe.model, "sample", lambda seeds, masks, captions, *rest: seen.append(captions) or sample(
        seeds, masks, captions, *rest))
    Image.fromarray(np.pad(np.full((12, 12), 255, np.uint8), 10)).save(tmp_path / "lesion.png")
    request = Request(mask_file=str(tmp_path / "lesion.png"), caption=" melanoma, back ", nfe=2)
    result = run(pipe, request, healthy_slices(pipe), tmp_path)
    assert result.sample.shape == (32, 32, 3) and result.overlay.shape == (32, 32, 3)
    assert seen == [["melanoma, back"]]
