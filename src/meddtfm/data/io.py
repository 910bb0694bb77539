"""Reading image, mask and NIfTI files with errors that name the file and the problem."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BadSampleError

_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_image(path: str | Path) -> np.ndarray:
    """Decode a PNG / JPEG / TIFF, or a 2D NIfTI (``H x W``, ``H x W x C`` or ``H x W x 1 x C``, axis 0 = rows), into
    ``H x W x C`` (C >= 1) without changing its dtype (NIfTI: its integer type on disk, else float32)."""
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, "file does not exist")
    if is_nifti(path):
        array, image = read_nifti(path)
        if array.ndim == 4 and array.shape[2] == 1:
            array = array[:, :, 0]
        if np.issubdtype(image.get_data_dtype(), np.integer):
            array = array.astype(image.get_data_dtype())
    elif path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            array = tifffile.imread(path)
        except Exception as err:  # tifffile raises many types for damaged files
            raise BadSampleError(path, f"cannot decode TIFF ({err})") from err
    else:
        try:
            with Image.open(path) as im:
                im.load()
                array = np.asarray(im)
        except _PIL_ERRORS as err:
            raise BadSampleError(path, f"cannot decode image, the file is corrupt or truncated ({err})") from err
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise BadSampleError(path, f"expected a 2D image, got an array of shape {array.shape}")
    return array


def read_nifti(path: str | Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Decode a NIfTI volume to float32 (native orientation) and return it with its header object."""
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, "file does not exist")
    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel / gzip / zlib raise many types for damaged files
        raise BadSampleError(path, f"cannot decode NIfTI, the file is corrupt or truncated ({err})") from err
    return array, image


def check_finite(array: np.ndarray, path: str | Path) -> None:
    """Raise when an intensity array holds NaN or Inf."""
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise BadSampleError(path, f"{bad} NaN/Inf intensity values")


def check_labels(labels: np.ndarray, allowed: tuple[int, ...], path: str | Path) -> None:
    """Raise when a label map holds values outside ``allowed``."""
    unknown = np.setdiff1d(np.unique(labels), np.asarray(allowed))
    if unknown.size:
        raise BadSampleError(path, f"unknown label values {unknown.tolist()} (allowed: {list(allowed)})")


def check_same_size(image_shape: tuple[int, ...], mask_shape: tuple[int, ...], path: str | Path) -> None:
    """Raise when a mask's spatial size differs from its image's."""
    if tuple(image_shape) != tuple(mask_shape):
        raise BadSampleError(path, f"mask size {tuple(mask_shape)} differs from image size {tuple(image_shape)}")


def binary_mask(array: np.ndarray, path: str | Path) -> np.ndarray:
    """A 0/255 (or 0/1) single-channel mask as ``H x W`` bool; anything else is an error."""
    if array.ndim == 3:
        if array.shape[2] != 1 and not (array == array[:, :, :1]).all():
            raise BadSampleError(path, f"mask has {array.shape[2]} differing channels, expected one")
        array = array[:, :, 0]
    values = np.unique(array)
    top = 1 if values.max(initial=0) <= 1 else 255
    if not np.isin(values, (0, top)).all():
        more = "..." if values.size > 8 else ""
        raise BadSampleError(path, f"mask is not binary: values {values[:8].tolist()}{more}")
    return array == top
