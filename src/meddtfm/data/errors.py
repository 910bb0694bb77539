"""The one exception every loader raises for a file it cannot use."""
from __future__ import annotations

from pathlib import Path


class BadSampleError(ValueError):
    """A sample that cannot be used; the message names the file and the problem.

    A DataLoader worker's exception is rebuilt in the main process as ``BadSampleError(text)``, where
    ``text`` is the worker's traceback; its last line ``...BadSampleError: PATH: PROBLEM`` is parsed back,
    so a bad file reads the same with ``data.num_workers > 0`` as without.
    """

    def __init__(self, path: str | Path, problem: str | None = None) -> None:
        if problem is None:
            last = str(path).rstrip().rsplit("\n", 1)[-1]
            path, _, problem = last.split(f"{type(self).__name__}: ", 1)[-1].partition(": ")
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
