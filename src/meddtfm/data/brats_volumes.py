"""BraTS volumes decoded into model-ready arrays: orientation, brain mask, normalisation and the slice cache.

* Brain: voxels differing from their sequence's background value in any chosen sequence. That value is
  the most frequent one on the volume's six faces: skull-stripped files are constant outside the head
  (0 in raw files; 0 or a negative constant in z-scored ones), whether or not it is the minimum. Each
  sequence is clipped to ``data.intensity_percentiles`` of its brain voxels and scaled to [-1, 1];
  the background is exactly -1.
* Slices are axial (the volume's last axis), shown in the radiological view: see ``slice_to_image``.
* ``data.slice_cache`` (default on): a case's first ``decode``, in any worker or rank, saves its
  ``decode_case`` arrays as ``images.npy`` and ``classes.npy`` in ``$MEDDTFM_CACHE/brats_volumes-<key>/``
  (key: the files' paths, sizes and mtimes, the sequences, the percentiles); later decodes memory-map
  them and copy out one slice. Images are float16: in [-1, 1] its step is at most 2**-11, 1/16 of an
  8-bit grey level, and it halves the disk (18 MB per sequence at 240 x 240 x 155: ~45 MB a case for
  flair + t1ce, ~80 MB for all four). Atomic writes (``meddtfm.files.atomic_write``) make concurrent
  builders of a case merely redundant; an unreadable entry is rebuilt; a failed write keeps the case
  in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

from .cache import file_signature, load_cached_arrays, save_cached_arrays
from .errors import BadSampleError
from .io import check_finite, check_labels, read_nifti

log = logging.getLogger(__name__)

LABELS = (0, 1, 2, 3, 4)
_CLASS_OF_LABEL = np.array([0, 1, 2, 1, 3], np.uint8)  # BraTS label -> 0 background, 1 NCR, 2 ED, 3 ET
_VOLUME_VERSION = 1
BRATS_AXCODES = ("L", "P", "S")  # BraTS 2021 files: affine diag(-1, -1, 1), i.e. LPS
RADIOLOGICAL = ("P", "L")  # image rows run anterior -> posterior, columns patient right -> left


def _reorient(array: np.ndarray, start: Sequence[str], end: Sequence[str]) -> np.ndarray:
    """Flip / transpose the last two axes of ``array`` from in-plane codes ``start`` to ``end``."""
    transform = ornt_transform(axcodes2ornt(tuple(start)), axcodes2ornt(tuple(end)))
    moved = apply_orientation(np.moveaxis(array, (-2, -1), (0, 1)), transform)
    return np.ascontiguousarray(np.moveaxis(moved, (0, 1), (-2, -1)))


def slice_to_image(volume_slice: np.ndarray, axcodes: Sequence[str] = BRATS_AXCODES) -> np.ndarray:
    """``... x X x Y`` axial slice(s) ``volume[..., z]`` -> ``... x H x W`` in the radiological view.

    The view is the one radiologists and PNG viewers expect: anterior at the top, the patient's right
    on the image's left. ``axcodes`` (``nibabel.aff2axcodes(affine)``) says where the volume's axes
    point; for BraTS (LPS: X runs right -> left, Y anterior -> posterior) the mapping is a transpose.
    """
    return _reorient(volume_slice, axcodes[:2], RADIOLOGICAL)


def image_to_slice(image: np.ndarray, axcodes: Sequence[str] = BRATS_AXCODES) -> np.ndarray:
    """Inverse of ``slice_to_image``: ``... x H x W`` -> ``... x X x Y``, ready for ``volume[..., z] = ...``.

    Resize the image back to the volume's in-plane size first; the source affine then applies unchanged.
    """
    return _reorient(image, RADIOLOGICAL, axcodes[:2])


def normalise(volume: np.ndarray, brain: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Clip ``volume`` to ``percentiles`` of its ``brain`` voxels and map them to [-1, 1]; background is -1."""
    out = np.full(volume.shape, -1.0, np.float32)
    if brain.any():
        values = volume[brain]
        lo, hi = np.percentile(values, percentiles)
        out[brain] = (np.clip(values, lo, hi) - lo) / max(hi - lo, 1e-8) * 2 - 1
    return out


def intensity_range(values: np.ndarray, percentiles: Sequence[float]) -> list[float]:
    """``[min, max, low, high]`` of a volume's brain voxels ``values``, low and high at ``percentiles``; NaN if none."""
    if not values.size:
        return [float("nan")] * 4
    lo, hi = np.percentile(values, percentiles)
    return [float(values.min()), float(values.max()), float(lo), float(hi)]


def background_value(volume: np.ndarray) -> float:
    """The most frequent value on the six faces of an X x Y x Z ``volume``: the constant outside the head."""
    faces = np.concatenate([np.moveaxis(volume, axis, 0)[[0, -1]].ravel() for axis in range(volume.ndim)])
    values, counts = np.unique(faces, return_counts=True)
    return float(values[counts.argmax()])


def brain_mask(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """X x Y x Z bool: voxels that differ from their volume's ``background_value`` in any of ``volumes``."""
    return np.logical_or.reduce([v != background_value(v) for v in volumes])


def read_volume(path: Path, seg: tuple[Path, tuple[int, ...]] | None = None) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Decode a 3D volume; given ``seg`` (the segmentation's file and shape), also check its shape and finiteness."""
    array, image = read_nifti(path)
    if array.ndim != 3:
        raise BadSampleError(path, f"expected a 3D volume, got shape {array.shape}")
    if seg is not None:
        check_shape(array.shape, seg, path)
        check_finite(array, path)
    return array, image


def check_shape(shape: tuple[int, ...], seg: tuple[Path, tuple[int, ...]], path: Path) -> None:
    """Raise ``BadSampleError`` unless ``shape`` is that of the segmentation ``seg`` (its file and shape)."""
    if tuple(shape) != tuple(seg[1]):
        raise BadSampleError(path, f"shape {tuple(shape)} differs from the segmentation {seg[0].name}'s "
                                   f"{tuple(seg[1])}")


def decode_case(paths: Sequence[Path], seg_path: Path, percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Decode, check and normalise a case: Z x C x H x W float16 images in [-1, 1], Z x H x W uint8 classes."""
    seg, seg_image = read_volume(seg_path)
    check_labels(seg, LABELS, seg_path)
    axcodes = nib.aff2axcodes(seg_image.affine)
    if axcodes[2] not in ("S", "I"):
        raise BadSampleError(seg_path, f"orientation {axcodes}: the last axis is not superior-inferior")
    volumes = [read_volume(p, (seg_path, seg.shape))[0] for p in paths]
    brain = brain_mask(volumes)
    images = np.stack([normalise(v, brain, percentiles).astype(np.float16) for v in volumes])
    classes = _CLASS_OF_LABEL[seg.astype(np.uint8)]
    return slice_to_image(np.moveaxis(images, -1, 0), axcodes), slice_to_image(np.moveaxis(classes, -1, 0), axcodes)


def _mapped_case(key: dict, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The slice-cache entry ``key`` as read-only memory maps, if it holds ``decode_case``'s arrays for ``channels``."""
    cached = load_cached_arrays("brats_volumes", key, ("images", "classes"))
    if cached is None:
        return None
    images, classes = cached["images"], cached["classes"]
    if (images.dtype != np.float16 or classes.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != channels
            or images.shape[:1] + images.shape[2:] != classes.shape):
        log.warning("rebuilding slice cache entry %s: unexpected arrays %s %s", key["files"][-1][0], images.shape,
                    classes.shape)
        return None
    return images, classes


def case_arrays(paths: list[Path], seg_path: Path, percentiles: list[float], modalities: Sequence[str],
                slice_cache: bool) -> tuple[np.ndarray, np.ndarray]:
    """A case's ``decode_case`` arrays; with ``slice_cache`` memory-mapped from the cache, built and saved on a miss."""
    if not slice_cache:
        return decode_case(paths, seg_path, percentiles)
    root = seg_path.parents[1]
    try:
        files = file_signature(paths + [seg_path], root)
    except OSError:  # a missing file: decoding names it
        return decode_case(paths, seg_path, percentiles)
    key = {"version": _VOLUME_VERSION, "root": str(root.resolve()), "files": files,
           "modalities": list(modalities), "percentiles": percentiles}
    hit = _mapped_case(key, len(paths))
    if hit is not None:
        return hit
    images, classes = decode_case(paths, seg_path, percentiles)
    if save_cached_arrays("brats_volumes", key, {"images": images, "classes": classes}):
        hit = _mapped_case(key, len(paths))  # mapped, so the LRU holds no pixels
    return hit if hit is not None else (images, classes)
