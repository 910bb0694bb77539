"""Deterministic subject-level splits: every slice of a patient (or image of a lesion) lands in one split."""
from __future__ import annotations

import random
from typing import Iterable

SPLITS = ("train", "val", "test")


def assign_splits(subject_ids: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Map each subject id to ``train`` / ``val`` / ``test``.

    Subjects are sorted, then shuffled by ``seed``, so the result depends on neither file order nor
    the machine. ``round(n * fraction)`` subjects go to val and test; with at least two subjects and a
    non-zero ``val_fraction``, val gets at least one and train keeps at least one.
    """
    subjects = sorted(set(subject_ids))
    random.Random(seed).shuffle(subjects)
    n = len(subjects)
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if n >= 2 and val_fraction > 0 and n_val == 0:
        n_val = 1
    n_val = min(n_val, max(n - 1, 0))
    n_test = min(n_test, max(n - 1 - n_val, 0))
    split = {s: "val" for s in subjects[:n_val]}
    split.update({s: "test" for s in subjects[n_val:n_val + n_test]})
    split.update({s: "train" for s in subjects[n_val + n_test:]})
    return split
