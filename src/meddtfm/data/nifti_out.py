"""Synthetic BraTS slices back onto their source volume's grid, as single-slice NIfTI files.

A model-space slice (``S x S``, radiological view, the geometry of ``BraTSDataset``) is mapped back
by undoing the loader's steps: resize to the central square's native size ``min(H, W)`` (bilinear for
images, nearest for masks), pad to the native in-plane view ``H x W`` (with the background: -1 for
images, 0 for masks), and ``brats_volumes.image_to_slice`` to the volume's axes. The file is a ``X x Y x 1``
volume whose affine is the source's shifted to slice ``z`` (``A[:3, 3] += z A[:3, 2]``), with the
source header otherwise: it overlays the source volume at that slice in any viewer. Intensities stay
in the model's normalised [-1, 1] scale (float32): the per-volume percentile window is not inverted,
since it clipped the source's extremes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from .brats_volumes import image_to_slice, slice_to_image

__all__ = ["BRATS_LABELS", "to_native_view", "write_sample", "write_slice"]

BRATS_LABELS = {"NCR": 1, "ED": 2, "ET": 4}  # class name -> BraTS label value


def to_native_view(image: torch.Tensor, view: tuple[int, int], nearest: bool = False, fill: float = -1.0) -> np.ndarray:
    """``C x S x S`` model-space slice -> ``C x H x W`` at the native view size (inverse of crop + resize)."""
    h, w = view
    s = min(h, w)
    x = image.detach().float().cpu()[None]
    if x.shape[-1] != s:
        mode = {"mode": "nearest-exact"} if nearest else {"mode": "bilinear", "align_corners": False, "antialias": True}
        x = F.interpolate(x, size=(s, s), **mode)
    out = np.full((image.shape[0], h, w), fill, np.float32)
    top, left = (h - s) // 2, (w - s) // 2
    out[:, top:top + s, left:left + s] = x[0].numpy()
    return out


def write_slice(view_slice: np.ndarray, source: str | Path, slice_index: int, path: str | Path) -> Path:
    """Write an ``H x W`` native-view slice as slice ``slice_index`` of ``source``'s grid (see module doc)."""
    src = nib.load(str(source))  # header only; no voxels are decoded
    axcodes = nib.aff2axcodes(src.affine)
    data = image_to_slice(view_slice, axcodes)[:, :, None]
    if data.shape[:2] != tuple(src.shape[:2]):
        raise ValueError(f"{source}: slice of shape {view_slice.shape} does not fit the in-plane size {src.shape[:2]}")
    affine = src.affine.copy()
    affine[:3, 3] += slice_index * affine[:3, 2]
    header = src.header.copy()
    header.set_data_dtype(data.dtype)
    image = nib.Nifti1Image(data, affine, header)
    image.set_sform(affine, int(src.header["sform_code"]) or 2)
    image.set_qform(affine, int(src.header["qform_code"]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_sample(image: torch.Tensor, mask: torch.Tensor | None, sources: Sequence[str | Path],
                 channel_names: Sequence[str], class_names: Sequence[str], slice_index: int, folder: str | Path,
                 name: str) -> list[Path]:
    """``folder/name_<channel>.nii.gz`` per channel of ``image`` (C x S x S) on its own source's grid, and
    ``folder/name_seg.nii.gz`` (BraTS labels 1 NCR, 2 ED, 4 ET, uint8) from ``mask`` (K x S x S) if given."""
    src = nib.load(str(sources[0]))
    view = slice_to_image(np.zeros(src.shape[:2], np.uint8), nib.aff2axcodes(src.affine)).shape
    native = to_native_view(image, view)
    paths = [write_slice(native[c], sources[c], slice_index, Path(folder) / f"{name}_{channel}.nii.gz")
             for c, channel in enumerate(channel_names)]
    if mask is not None:
        onehot = to_native_view(mask, view, nearest=True, fill=0.0) > 0.5
        labels = np.zeros(view, np.uint8)
        for i, k in enumerate(class_names):
            if k in BRATS_LABELS:
                labels[onehot[i]] = BRATS_LABELS[k]
        paths.append(write_slice(labels, sources[0], slice_index, Path(folder) / f"{name}_seg.nii.gz"))
    return paths
