"""One Generate press of the demo, without Gradio: the page's inputs in, images, a PNG and a status line out.

Masks come from an uploaded file (``.png`` / ``.tif`` label map, ``.npy``) or, when none is uploaded, from the
drawing: the editor has one layer per class (``ImageEditor`` value ``{"layers": [H x W x 4 RGBA, ...]}``), and a
pixel painted in layer k belongs to class k. A bad input raises ``InputError`` with the message the page shows.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..pipeline import InputError, MedDTFMPipeline, PipelineOutput, as_masks, as_references
from ..viz import to_rgb

NO_REFERENCE = "none (noise-based)"
UPLOADED = "uploaded file"
MAX_UPLOAD_MB = 10  # the page refuses larger files (Gradio's max_file_size); this module checks again


@dataclass(frozen=True)
class Request:
    """The page's inputs: ``mask_file`` / ``drawing`` (mask), ``reference`` (a choice: ``NO_REFERENCE``,
    ``UPLOADED`` or a healthy slice's name) and ``reference_file``, caption and sampling settings."""

    mask_file: str | None = None
    drawing: dict | None = None
    reference: str = NO_REFERENCE
    reference_file: str | None = None
    caption: str = ""
    nfe: int = 8
    cfg: float = 2.0
    seed: int = 0
    resize: bool = True


@dataclass
class Result:
    """What the page shows: ``sample`` (``R x R`` grey or ``R x R x 3``), ``overlay``, ``difference`` (reference
    mode, else None), the ``png`` to download (the sample at the model's size) and a ``status`` line."""

    sample: np.ndarray
    overlay: np.ndarray
    difference: np.ndarray | None
    png: Path
    status: str


def _checked_file(path: str) -> str:
    size = Path(path).stat().st_size
    if size > MAX_UPLOAD_MB * 2 ** 20:
        raise InputError(f"{Path(path).name} is {size / 2 ** 20:.1f} MB; the largest upload is {MAX_UPLOAD_MB} MB")
    return path


def drawn_mask(drawing: dict | None, classes: tuple[str, ...]) -> np.ndarray | None:
    """The editor's layers as one-hot ``(K, H, W)`` (layer k: class k), or None when nothing is painted."""
    layers = [np.asarray(layer) for layer in (drawing or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    alpha = [layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else np.asarray(layer) > 0
             for layer in layers[:len(classes)]]
    if not any(a.any() for a in alpha):
        return None
    h, w = alpha[0].shape
    return np.stack(alpha + [np.zeros((h, w), bool)] * (len(classes) - len(alpha))).astype(np.float32)


def request_mask(pipe: MedDTFMPipeline, request: Request) -> Tensor:
    """The condition ``(1, K, R, R)`` of ``request``: the uploaded file, else the drawing; never empty."""
    if request.mask_file:
        masks = as_masks(_checked_file(request.mask_file), pipe.class_names, pipe.resolution, request.resize)
    else:
        drawn = drawn_mask(request.drawing, pipe.class_names)
        if drawn is None:
            raise InputError("no mask: upload a mask file or draw a lesion (one layer per class)")
        masks = as_masks(drawn, pipe.class_names, pipe.resolution, resize=True)  # the canvas is larger than R
    if not masks.any():
        raise InputError("the mask is empty: it has no lesion pixel of any class "
                         f"({', '.join(pipe.class_names)}); draw or upload a lesion")
    return masks


def request_reference(request: Request, healthy: dict[str, Tensor]) -> str | Tensor | None:
    """The reference of ``request``: None (noise-based), the uploaded file, or a healthy slice ``(C, R, R)``."""
    if request.reference == NO_REFERENCE:
        return None
    if request.reference == UPLOADED:
        if not request.reference_file:
            raise InputError("reference-guided mode: upload a reference slice, or pick a healthy one")
        return _checked_file(request.reference_file)
    if request.reference not in healthy:
        raise InputError(f"unknown reference {request.reference!r}")
    return healthy[request.reference]


@contextmanager
def evaluation_progress(pipe: MedDTFMPipeline, total: int, report: Callable[[float, str], None]) -> Iterator[None]:
    """Call ``report(fraction, text)`` after each velocity evaluation of a flow (``total`` expected)."""
    if pipe.kind != "meddtfm":
        yield
        return
    done = [0]

    def hook(*_: object) -> None:
        done[0] += 1
        report(min(done[0] / total, 1.0), f"velocity evaluation {done[0]} of {total}")

    handle = pipe.model.net.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def run(pipe: MedDTFMPipeline, request: Request, healthy: dict[str, Tensor], folder: Path,
        report: Callable[[float, str], None] = lambda fraction, text: None) -> Result:
    """Sample one image for ``request``; write its PNG under ``folder``. ``InputError`` names an uploaded file by
    its name, not by the server's temporary path."""
    try:
        return _run(pipe, request, healthy, folder, report)
    except InputError as err:
        message = str(err)
        for path in (request.mask_file, request.reference_file):
            message = message.replace(path, Path(path).name) if path else message
        raise InputError(message) from err


def _run(pipe: MedDTFMPipeline, request: Request, healthy: dict[str, Tensor], folder: Path,
         report: Callable[[float, str], None]) -> Result:
    masks = request_mask(pipe, request)
    reference = request_reference(request, healthy)
    if reference is not None and not pipe.supports_reference:
        raise InputError(f"this {pipe.kind} model cannot do reference-guided synthesis; choose {NO_REFERENCE!r}")
    caption = request.caption.strip() if pipe.uses_captions else None
    start = time.perf_counter()
    total = request.nfe * (2 if reference is not None else 1)  # reference mode inverts first
    with evaluation_progress(pipe, total, report):
        out: PipelineOutput = pipe(masks=masks, captions=caption, reference=reference, nfe=request.nfe,
                                   cfg=request.cfg, seed=int(request.seed), resize=request.resize)
    sample = out.to_pil()[0]
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"meddtfm_seed{int(request.seed)}_nfe{request.nfe}_cfg{request.cfg:g}.png"
    sample.save(png)
    difference = np.asarray(out.differences()[0]) if reference is not None else None
    mode = "reference-guided" if reference is not None else "noise-based"
    status = (f"{mode}, seed {int(request.seed)}, {out.nfe} velocity evaluations, CFG {request.cfg:g}: "
              f"{sample.width} x {sample.height} px in {time.perf_counter() - start:.1f} s")
    if reference is not None:
        status += f"; largest |sample - reference| {float((out.images - out.references).abs().max()):.3f} (of 2)"
    return Result(np.asarray(sample), np.asarray(out.overlays()[0]), difference, png, status)


def reference_preview(pipe: MedDTFMPipeline, request: Request, healthy: dict[str, Tensor]) -> np.ndarray | None:
    """The chosen reference as the model will see it (``R x R x 3``), or None (none chosen, or unreadable: Generate
    then says why)."""
    try:
        reference = request_reference(request, healthy)
        if reference is None:
            return None
        return to_rgb(as_references(reference, pipe.channel_names, pipe.resolution, resize=True)[0])
    except InputError:
        return None
