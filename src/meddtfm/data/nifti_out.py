"""Synthetic BraTS slices back onto their source volume's grid: single-slice NIfTI files, or the whole case.

A model-space slice (``S x S``, radiological view, the geometry of ``BraTSDataset``) is mapped back
by undoing the loader's steps: resize to the central square's native size ``min(H, W)`` (bilinear for
images, nearest for masks), pad to the native in-plane view ``H x W`` (with the background: -1 for
images, 0 for masks), and ``brats_volumes.image_to_slice`` to the volume's axes. The file is a ``X x Y x 1``
volume whose affine is the source's shifted to slice ``z`` (``A[:3, 3] += z A[:3, 2]``), with the
source header otherwise: it overlays the source volume at that slice in any viewer. Intensities stay
in the model's normalised [-1, 1] scale (float32): the per-volume percentile window is not inverted,
since it clipped the source's extremes.

``write_volume`` writes instead a case's whole stack, each sequence with its source's affine, header and
on-disk type, the synthetic slices inserted and every other slice left as it was. There the intensities
go back to the source's scale: ``lo + (x + 1) / 2 (hi - lo)`` with ``lo, hi`` the case's percentile window
(``data.intensity_percentiles`` of its brain voxels, as the loader normalised it), and the model's black
(``x < -1 + 1e-3``) becomes the sequence's background value. Values the window clipped are not recovered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from .brats_volumes import background_value, brain_mask, image_to_slice, read_volume, slice_to_image

__all__ = ["BRATS_LABELS", "to_native_view", "write_sample", "write_slice", "write_volume"]

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
        paths.append(write_slice(_labels(mask, view, class_names), sources[0], slice_index,
                                 Path(folder) / f"{name}_seg.nii.gz"))
    return paths


def _labels(mask: torch.Tensor, view: tuple[int, int], class_names: Sequence[str]) -> np.ndarray:
    """One-hot ``K x S x S`` -> ``H x W`` uint8 BraTS labels (1 NCR, 2 ED, 4 ET) at the native view size."""
    onehot = to_native_view(mask, view, nearest=True, fill=0.0) > 0.5
    labels = np.zeros(view, np.uint8)
    for i, k in enumerate(class_names):
        if k in BRATS_LABELS:
            labels[onehot[i]] = BRATS_LABELS[k]
    return labels


def _save_like(data: np.ndarray, source: str | Path, path: Path) -> Path:
    """``data`` (in ``source``'s scaled units) with ``source``'s affine and header; integer on-disk types are
    kept when the source is unscaled (values rounded and clipped to the type), else float32."""
    src = nib.load(str(source))
    dtype, header = np.dtype(src.get_data_dtype()), src.header.copy()
    slope, inter = header.get_slope_inter()
    if np.issubdtype(dtype, np.integer) and slope in (None, 1.0) and inter in (None, 0.0):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max).astype(dtype)
    else:
        data = data.astype(np.float32)
        header.set_data_dtype(np.float32)
    image = nib.Nifti1Image(data, src.affine, header)
    image.set_sform(src.affine, int(src.header["sform_code"]))
    image.set_qform(src.affine, int(src.header["qform_code"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_volume(slices: Mapping[int, tuple[torch.Tensor, torch.Tensor | None]], sources: Sequence[str | Path],
                 seg_source: str | Path, channel_names: Sequence[str], class_names: Sequence[str],
                 percentiles: Sequence[float], folder: str | Path, name: str) -> list[Path]:
    """A case's whole stack with ``slices`` (axial index -> synthetic image ``C x S x S`` and its mask ``K x S x S``
    or None) inserted: ``folder/name_<channel>.nii.gz`` per sequence of ``sources`` and ``name_seg.nii.gz`` from
    ``seg_source``, each on its source's grid and header (module doc); the other slices keep the source's values."""
    volumes = [read_volume(Path(p))[0] for p in sources]
    brain = brain_mask(volumes)
    seg_image = nib.load(str(seg_source))
    axcodes = nib.aff2axcodes(seg_image.affine)
    view = slice_to_image(np.zeros(volumes[0].shape[:2], np.uint8), axcodes).shape
    size = next(iter(slices.values()))[0].shape[-1] if slices else 1
    crop = image_to_slice(to_native_view(torch.ones(1, size, size), view, fill=0.0)[0], axcodes) > 0.5
    paths = []
    for c, (volume, channel) in enumerate(zip(volumes, channel_names)):
        lo, hi = np.percentile(volume[brain], percentiles) if brain.any() else (0.0, 1.0)
        background, out = background_value(volume), volume.copy()
        for z, (image, _) in slices.items():
            x = image_to_slice(to_native_view(image[c:c + 1], view)[0], axcodes)
            values = np.where(x < -1 + 1e-3, background, lo + (x + 1) / 2 * (hi - lo))
            out[:, :, z] = np.where(crop, values, volume[:, :, z])
        paths.append(_save_like(out, sources[c], Path(folder) / f"{name}_{channel}.nii.gz"))
    seg = np.asarray(seg_image.dataobj).copy()
    for z, (_, mask) in slices.items():
        if mask is not None:
            seg[:, :, z] = np.where(crop, image_to_slice(_labels(mask, view, class_names), axcodes), seg[:, :, z])
    paths.append(_save_like(seg, seg_source, Path(folder) / f"{name}_seg.nii.gz"))
    return paths
