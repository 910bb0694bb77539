"""Shared fixtures: where the real data lives, and tiny configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The suite's models are tiny and overhead-bound: one intra-op thread avoids OpenMP spin-waits on
# a 2-core machine (measured: a tiny U-KAN forward took up to 2.5 s with 2 threads under load, 10 ms with 1).
# OMP_NUM_THREADS also reaches subprocesses and keeps the training loop's own choice (cpu_threads) at 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a set under ``../shared/data``, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repository as ../shared/data)")
    return path
