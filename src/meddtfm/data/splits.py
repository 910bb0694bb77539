"""Deterministic subject-level splits: every slice of a patient (or image of a lesion) lands in one split.

A subject's split is a function of its own id and ``data.split_seed`` only:
``u = blake2b(f"{split_seed}:{subject_id}") / 2^64`` in [0, 1), then ``val`` if ``u < val_fraction``,
``test`` if ``u < val_fraction + test_fraction``, else ``train``. So a subject never moves between
splits when other subjects are added, filtered out (slice selection, modalities, ``on_bad_sample``)
or skipped: a teacher or evaluation segmenter trained with other filters never sees a test patient.
The split sizes are binomial around the fractions (LGG, 110 patients at 10 %: 11 +- 3 in val).

Tiny sets: a split whose fraction is above 0 but that drew nobody (say 4 BraTS cases at 10 %) takes
the training subject of lowest ``u``, as long as training keeps one. Only in that case does a
subject's split depend on which others exist.
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterable

SPLITS = ("train", "val", "test")


def subject_draw(subject_id: str, seed: int) -> float:
    """The subject's uniform draw ``u`` in [0, 1), from its id and the split seed alone."""
    digest = hashlib.blake2b(f"{seed}:{subject_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def assign_splits(subject_ids: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Map each subject id to ``train`` / ``val`` / ``test`` (module doc); independent of order and duplicates."""
    draws = {s: subject_draw(s, seed) for s in sorted(set(subject_ids))}
    split = {s: "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"
             for s, u in draws.items()}
    for name, fraction in (("val", val_fraction), ("test", test_fraction)):
        train = sorted((u, s) for s, u in draws.items() if split[s] == "train")
        if fraction > 0 and name not in split.values() and len(train) >= 2:
            split[train[0][1]] = name
    return split


def kept_subjects(subject_ids: Iterable[str], fraction: float, seed: int) -> set[str]:
    """The ``ceil(fraction * n)`` of the ``n`` subjects with the lowest draw ``subject_draw("train:" + id, seed)``:
    a fixed subset of the training subjects for low-data studies, nested (10 % lies within 20 %)."""
    subjects = sorted(set(subject_ids), key=lambda s: subject_draw(f"train:{s}", seed))
    return set(subjects[:math.ceil(fraction * len(subjects) - 1e-9)])
