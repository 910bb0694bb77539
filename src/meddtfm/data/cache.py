"""The loaders' on-disk cache: JSON scan results and memory-mapped ``.npy`` arrays.

Entries live in ``$MEDDTFM_CACHE`` (default ``~/.cache/meddtfm``), never in a data root. An entry is
addressed by a ``kind`` and a JSON-serialisable ``key`` (typically the data root and the
``file_signature`` of the files it was computed from), so any change to those files misses the cache.
Writes are atomic (temp file + ``os.replace``): concurrent writers of one entry (DataLoader workers,
DDP ranks) are merely redundant. An unreadable entry reads as a miss; a failed write only logs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..files import atomic_write, atomic_write_text

log = logging.getLogger(__name__)


def file_signature(paths: Iterable[Path], root: Path) -> list[list]:
    """``[relative path, mtime_ns, size]`` per file: a cache key that changes whenever a file does."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append([path.relative_to(root).as_posix(), stat.st_mtime_ns, stat.st_size])
    return out


def cache_path(kind: str, key: dict) -> Path:
    """Where the entry of ``kind`` for ``key`` lives: ``<cache>/<kind>-<digest>`` (``.json`` for JSON values)."""
    folder = Path(os.environ.get("MEDDTFM_CACHE") or Path.home() / ".cache" / "meddtfm").expanduser()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"{kind}-{digest}"


def load_cached(kind: str, key: dict) -> Any | None:
    """The JSON value saved for ``(kind, key)``, or None when there is none (or it is unreadable)."""
    path = cache_path(kind, key).with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable cache file %s (%s)", path, err)
        return None


def save_cached(kind: str, key: dict, value: Any) -> bool:
    """Save ``value`` as JSON; False (with a warning) when it cannot be written."""
    path = cache_path(kind, key).with_suffix(".json")
    try:
        atomic_write_text(path, json.dumps(value))
    except OSError as err:
        log.warning("cannot write cache file %s (%s); the scan will be repeated next time", path, err)
        return False
    return True


def load_cached_arrays(kind: str, key: dict, names: Iterable[str]) -> dict[str, np.ndarray] | None:
    """Read-only memory maps of the arrays ``names`` saved for ``(kind, key)``.

    None when any is missing or unreadable.
    """
    folder = cache_path(kind, key)
    try:
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as err:
        log.warning("rebuilding unreadable cache entry %s (%s)", folder, err)
        return None


def save_cached_arrays(kind: str, key: dict, arrays: dict[str, np.ndarray]) -> bool:
    """Save each array as ``<name>.npy`` in the entry's folder; False (with a warning) when it cannot be written."""
    folder = cache_path(kind, key)
    try:
        for name, array in arrays.items():
            atomic_write(folder / f"{name}.npy", lambda tmp, a=array: _save_npy(tmp, a))
    except OSError as err:
        log.warning("cannot write cache entry %s (%s); keeping the data in memory", folder, err)
        return False
    return True


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a handle: given a path, np.save appends ".npy" to the temporary name
        np.save(fh, array)
