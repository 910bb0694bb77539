"""Atomic file writes: a crash or a concurrent writer leaves the old file or the new one, never half of one.

``atomic_write`` hands its writer a temporary path in the target's folder (a hidden name ending in
``.tmp``), flushes it to disk and renames it over the target with ``os.replace``. The temporary name
hides the target's extension, so writers that pick a format from it (``np.save``, PIL) need the
format given explicitly or a file handle.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, fsync it, rename it to ``path``; return ``path``.

    Creates the parent folder; removes the temporary file when anything fails (and re-raises).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
