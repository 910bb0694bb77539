"""The pipeline's inputs as the tensors a generator takes: masks ``(B, K, R, R)``, references ``(B, C, R, R)``.

A mask is a tensor or NumPy array (one-hot ``K x H x W``, an ``H x W`` label map, or a batch ``B x K x H x W``),
a PIL image or a file (``.npy``, PNG, TIFF, JPEG: a label map, value i = the i-th class, 0/255 for one class;
``meddtfm.synthesis.one_hot_mask``), or a list of those. A reference is a float tensor or array ``C x H x W``
(or ``B x C x H x W``, or ``H x W`` for one channel) in [-1, 1], an 8-bit image (PIL, a ``uint8`` array
``H x W [x 3]`` or a file) or a ``.npy`` file ``C x H x W`` in [-1, 1], or a list of those.

Every input is checked before a network runs: a wrong class or channel count, a size other than the model's
``R x R`` (unless ``resize``: centre square crop, then nearest for masks and antialiased bilinear for images, as
the loaders do) or values that are not binary / not in [-1, 1] raise ``InputError`` naming the input.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data.errors import BadSampleError
from ..data.io import read_image
from ..data.transforms import resize_pair
from ..synthesis import one_hot_mask, read_mask_array

MaskLike = Union[Tensor, np.ndarray, Image.Image, str, Path]
ImageLike = Union[Tensor, np.ndarray, Image.Image, str, Path]
MAX_SIDE = 4096  # px: a larger mask or reference is refused before it is resized


class InputError(ValueError):
    """A mask, caption, reference or setting that does not fit the model."""


def _items(value: object) -> list:
    """A list or tuple as its items, anything else as one item."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _array(value: Tensor | np.ndarray) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def _fit(arrays: list[np.ndarray], kind: str, size: int, resize: bool, names: list[str]) -> Tensor:
    """``(N, H, W)`` arrays (masks or images) as ``(B, N, size, size)``; resized only when ``resize``."""
    out = []
    for array, name in zip(arrays, names):
        h, w = array.shape[-2:]
        if max(h, w) > MAX_SIDE:
            raise InputError(f"{name} is {h} x {w} px; the largest accepted side is {MAX_SIDE} px")
        if (h, w) != (size, size) and not resize:
            raise InputError(f"{name} is {h} x {w} px; this model makes {size} x {size} images: pass resize=True "
                             "(centre square crop, then resize) or resize it yourself")
        blank = np.zeros((1, h, w), np.float32)
        out.append(resize_pair(blank, array, size)[1] if kind == "mask" else resize_pair(array, blank, size)[0])
    return torch.stack(out)


def as_masks(masks: MaskLike | Sequence[MaskLike], classes: Sequence[str], size: int, resize: bool = False) -> Tensor:
    """``masks`` as binary one-hot ``(B, K, size, size)`` float32 over ``classes``."""
    arrays, names = [], []
    for i, item in enumerate(_items(masks)):
        name = f"mask {i}" if isinstance(masks, (list, tuple)) else "the mask"
        try:
            if isinstance(item, (str, Path)):
                array, image = read_mask_array(item)
                name = str(item)
            elif isinstance(item, Image.Image):  # as a file would be read: a label map, an RGB image's first channel
                array, image = np.asarray(item), True
                array = array[:, :, 0] if array.ndim == 3 else array
            else:
                array = _array(item)
                image = array.dtype == np.uint8 and array.ndim == 2
            batch = array if array.ndim == 4 else array[None]
            for j, one in enumerate(batch):
                arrays.append(one_hot_mask(one.astype(np.float32) if one.dtype == bool else one, classes, name, image))
                names.append(f"{name} [{j}]" if array.ndim == 4 else name)
        except BadSampleError as err:
            raise InputError(f"{err}; a mask is one-hot (K={len(classes)}, H, W) over {', '.join(classes)}, an H x W "
                             "label map (0 background, i the i-th class) or a batch (B, K, H, W)") from err
    if not arrays:
        raise InputError("no masks given")
    return _fit(arrays, "mask", size, resize, names)


def _image_array(item: Image.Image | np.ndarray, channels: Sequence[str], name: str) -> np.ndarray:
    """An 8-bit image (PIL or ``uint8`` ``H x W [x C]``) as ``(C, H, W)`` in [-1, 1] for a model of ``channels``."""
    if isinstance(item, Image.Image):
        if item.mode not in ("L", "RGB", "RGBA", "P", "LA"):
            raise InputError(f"{name}: image mode {item.mode} (e.g. 16-bit) is not supported: save it as an 8-bit "
                             "PNG, or pass a float tensor in [-1, 1]")
        item = np.asarray(item.convert("RGB") if item.mode in ("RGBA", "P") else item.convert("L")
                          if item.mode == "LA" else item)
    array = item[:, :, None] if item.ndim == 2 else item[:, :, :3]
    grey = array.shape[2] == 1 or bool((array == array[:, :, :1]).all())
    if len(channels) == 3:
        if grey:
            raise InputError(f"{name} is a greyscale image; this model takes colour (RGB) images")
        array = array[:, :, :3]
    elif len(channels) == 1:
        if not grey:
            raise InputError(f"{name} is a colour (RGB) image; this model takes one channel "
                             f"({channels[0]}): pass a greyscale slice")
        array = array[:, :, :1]
    else:
        raise InputError(f"{name} is an 8-bit image; this model takes {len(channels)} channels "
                         f"({', '.join(channels)}): pass a .npy file or a tensor C x H x W in [-1, 1]")
    return array.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1


def _float_array(array: np.ndarray, channels: Sequence[str], name: str) -> np.ndarray:
    """A float ``(C, H, W)`` (or ``H x W`` for one channel) in [-1, 1], checked."""
    array = array[None] if array.ndim == 2 and len(channels) == 1 else array
    if array.ndim != 3 or array.shape[0] != len(channels):
        raise InputError(f"{name} has shape {tuple(array.shape)}; this model takes {len(channels)} x H x W "
                         f"({', '.join(channels)}) in [-1, 1]")
    if not np.isfinite(array).all() or np.abs(array).max() > 1 + 1e-3:
        raise InputError(f"{name} must be finite and scaled to [-1, 1]; got values in "
                         f"[{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]")
    return array.astype(np.float32)


def as_references(references: ImageLike | Sequence[ImageLike], channels: Sequence[str], size: int,
                  resize: bool = False) -> Tensor:
    """``references`` as ``(B, C, size, size)`` float32 in [-1, 1] for a model of ``channels``."""
    arrays, names = [], []
    for i, item in enumerate(_items(references)):
        name = f"reference {i}" if isinstance(references, (list, tuple)) else "the reference"
        if isinstance(item, (str, Path)):
            name = str(item)
            try:
                item = np.load(item) if Path(item).suffix == ".npy" else read_image(item)
            except (BadSampleError, OSError, ValueError) as err:
                raise InputError(f"{name}: cannot read the reference ({err})") from err
            if Path(name).suffix != ".npy" and item.dtype != np.uint8:
                raise InputError(f"{name}: a {item.dtype} image; only 8-bit images are read (or a .npy in [-1, 1])")
        if isinstance(item, Image.Image) or (isinstance(item, np.ndarray) and item.dtype == np.uint8):
            batch = [_image_array(item, channels, name)]
        else:
            array = _array(item)
            batch = list(array) if array.ndim == 4 else [array]
            batch = [_float_array(a, channels, name) for a in batch]
        arrays += batch
        names += [name] * len(batch)
    if not arrays:
        raise InputError("no references given")
    return _fit(arrays, "image", size, resize, names)
