"""Which subjects a run trained on: the ``data`` keys that decide a subject's split, compared between runs.

``data.splits.assign_splits`` puts a subject in train / val / test by ``data.split_seed`` and the
``val_fraction`` / ``test_fraction`` shares; these three keys (``SPLIT_KEYS``) are the contract between
runs. The rest of ``data`` is not: ``root`` may legitimately move to another disk or machine, and
``name`` / ``modalities`` / ``slices`` / ``phantom_*`` pick the images, not a subject's split (channels and
classes are checked where they matter; ``sample --dataset-reference healthy`` itself switches ``slices``).
``assign_splits`` draws each subject's split from its id and these keys alone, so equal keys mean equal
splits whatever images the two runs selected.
``SEGMENTER_KEYS`` adds ``resolution``: a segmenter (the U-KAN teacher, the evaluation U-Net) is only
trusted on images of the size it was trained at.

Every checkpoint records its training ``data`` (the tasks' ``export_config``), so the teacher, the
evaluation U-Net and the generator can be held to one split. The check lives in ``training`` so that
``synthesis``, ``evaluation`` and ``cli`` can all import it without importing upward.
"""
from __future__ import annotations

from typing import Mapping, Sequence

SPLIT_KEYS = ("split_seed", "val_fraction", "test_fraction")
SEGMENTER_KEYS = (*SPLIT_KEYS, "resolution")


class SplitMismatchError(ValueError):
    """Two data configs that would put some subject in different splits (or differ in ``resolution``)."""


def check_same_split(a: Mapping, b: Mapping, what_a: str, what_b: str, keys: Sequence[str] = SPLIT_KEYS,
                     hint: str = "") -> None:
    """Raise ``SplitMismatchError`` naming each key of ``keys`` where the ``data`` dicts ``a`` and ``b`` differ.

    ``what_a`` / ``what_b`` say where each dict comes from ("the generator checkpoint g.safetensors");
    ``hint`` ends the message (what to do). A key that either dict lacks is a mismatch too: a split
    that was not recorded cannot be checked.
    """
    problems = []
    for key in keys:
        missing = [what for what, d in ((what_a, a), (what_b, b)) if key not in d]
        if missing:
            problems.extend(f"{what} records no data.{key}" for what in missing)
        elif a[key] != b[key]:
            problems.append(f"data.{key} is {a[key]!r} in {what_a} but {b[key]!r} in {what_b}")
    if problems:
        raise SplitMismatchError("; ".join(problems) + (f". {hint}" if hint else ""))
