"""Helpers shared by the file-based loaders: listing, pixel conversion, masks and CSVs (the cache is ``cache.py``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..config import DataConfig
from .errors import BadSampleError
from .io import NIFTI_SUFFIXES, binary_mask, check_finite, check_labels, check_same_size, is_nifti, read_image

if TYPE_CHECKING:
    from .base import MedicalDataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", *NIFTI_SUFFIXES)


def data_root(cfg: DataConfig) -> Path:
    """``cfg.root`` as an existing folder."""
    if not cfg.root:
        raise ValueError(f"data.root is not set: point it at your {cfg.name} download")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise BadSampleError(root, "data root does not exist or is not a folder")
    return root


def list_images(folder: Path) -> list[Path]:
    """Sorted image files (PNG / JPEG / TIFF / NIfTI) directly inside ``folder``, hidden files excluded."""
    if not folder.is_dir():
        raise BadSampleError(folder, "folder does not exist")
    return sorted(p for p in folder.iterdir()
                  if p.name.lower().endswith(IMAGE_SUFFIXES) and not p.name.startswith(".") and p.is_file())


def file_stem(path: Path) -> str:
    """The name without its image suffix (``a.nii.gz`` -> ``a``, ``a.png`` -> ``a``)."""
    return path.name[:-len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem


def by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    """Index files by stem; two files with one stem (``a.png``, ``a.tif``) are ambiguous, hence an error."""
    index: dict[str, Path] = {}
    for path in paths:
        stem = file_stem(path)
        if stem in index:
            raise BadSampleError(path, f"has the same name as {index[stem].name}; keep only one of them")
        index[stem] = path
    return index


def report_bad(dataset: MedicalDataset, err: BadSampleError) -> None:
    """Apply ``data.on_bad_sample`` to a problem found while scanning: raise, or record it and go on."""
    if dataset.cfg.on_bad_sample == "error":
        raise err
    dataset.skipped.add(err)


def read_csv(path: Path, required: Sequence[str], **kwargs: Any) -> pd.DataFrame:
    """Read a CSV indexed by its first ``required`` column; missing file, columns or duplicate ids are errors."""
    if not path.is_file():
        raise BadSampleError(path, "CSV file does not exist")
    try:
        frame = pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as err:  # pandas' parser errors are ValueErrors
        raise BadSampleError(path, f"cannot parse CSV ({err})") from err
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise BadSampleError(path, f"missing columns {missing} (found {list(frame.columns)})")
    frame[required[0]] = frame[required[0]].astype(str).str.strip()
    duplicated = frame[required[0]][frame[required[0]].duplicated()].tolist()
    if duplicated:
        raise BadSampleError(path, f"{required[0]} {duplicated[0]!r} appears in more than one row")
    return frame.set_index(required[0])


def to_unit_range(array: np.ndarray, path: str | Path) -> np.ndarray:
    """``H x W x C`` pixels to ``C x H x W`` float32 in [-1, 1]: uint8 / uint16 scaled by the type's range; float
    (a NIfTI written by ``meddtfm augment``) taken as it is, and then it must lie in [-1, 1]."""
    if array.dtype in (np.uint8, np.uint16):
        half = np.iinfo(array.dtype).max / 2.0
        return (array.transpose(2, 0, 1).astype(np.float32) / np.float32(half)) - np.float32(1.0)
    if not (np.issubdtype(array.dtype, np.floating) and is_nifti(path)):
        raise BadSampleError(path, f"unsupported pixel type {array.dtype} (expected 8- or 16-bit unsigned integers, "
                                   "or a float NIfTI in [-1, 1])")
    check_finite(array, path)
    if array.size and (array.min() < -1.0 - 1e-4 or array.max() > 1.0 + 1e-4):
        raise BadSampleError(path, f"float intensities span [{array.min():.3g}, {array.max():.3g}]; a float image "
                                   "must be normalised to [-1, 1]")
    return np.clip(array.transpose(2, 0, 1).astype(np.float32), -1.0, 1.0)


def check_channels(array: np.ndarray, names: Sequence[str], path: str | Path) -> None:
    """Raise unless the ``H x W x C`` ``array`` has one channel per name."""
    if array.shape[2] != len(names):
        raise BadSampleError(path, f"has {array.shape[2]} channel(s), expected {len(names)} ({', '.join(names)})")


def read_channels(path: str | Path, names: Sequence[str]) -> np.ndarray:
    """Decode an image that must have ``len(names)`` channels, as ``C x H x W`` float32 in [-1, 1]."""
    array = read_image(path)
    check_channels(array, names, path)
    return to_unit_range(array, path)


def read_binary_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A 0/255 (or 0/1) mask of spatial ``size`` as ``1 x H x W`` float32 in {0, 1}."""
    array = read_image(path)
    check_same_size(size, array.shape[:2], path)
    return binary_mask(array, path)[None].astype(np.float32)


def read_label_mask(path: str | Path, size: tuple[int, int], values: Sequence[int]) -> np.ndarray:
    """An integer label map of spatial ``size`` as ``K x H x W`` one-hot float32 over ``values`` (0 = background)."""
    array = read_image(path)
    check_same_size(size, array.shape[:2], path)
    if array.shape[2] != 1 and not (array == array[:, :, :1]).all():
        raise BadSampleError(path, f"label map has {array.shape[2]} differing channels, expected one")
    labels = array[:, :, 0]
    check_labels(labels, (0, *values), path)
    return np.stack([labels == v for v in values]).astype(np.float32)
