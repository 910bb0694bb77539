"""The one exception every loader raises for a file it cannot use."""
from __future__ import annotations

from pathlib import Path


class BadSampleError(ValueError):
    """A sample that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
