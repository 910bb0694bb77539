"""Where a synthetic image's mask (and, in reference mode, its healthy anatomy) comes from.

A ``Source`` is a real lesion mask: of a sample of a dataset split (``dataset_sources``: the samples that
have a mask, with their caption and subject) or a mask file of a folder (``folder_sources``). Its
``region`` (S, S) is where a moved lesion may go: the anatomy of its image (non-background pixels), or
the whole image for a bare mask file. ``HealthyReferences`` holds the healthy slices of a split
(``data.slices=healthy``) that reference mode inserts lesions into: one of the source's own subject
where it has any, else one of any subject, picked by the synthetic image's seed.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import DataConfig
from ..data import build_dataset
from ..data.base import MedicalDataset
from ..synthesis import ConditionSetError, condition_files, read_mask_file

BACKGROUND = -0.95  # an image pixel whose channels all lie below this (in [-1, 1]) is background


def anatomy(image: Tensor) -> Tensor:
    """``(S, S)`` bool: pixels of ``image`` (C, S, S) in [-1, 1] brighter than the background in some channel."""
    return image.amax(0) > BACKGROUND


@dataclass(frozen=True)
class Source:
    """A real mask: its name, subject and caption, and ``load() -> {"mask": (K, S, S), "region": (S, S)}``."""

    name: str
    subject: str
    caption: str
    load: Callable[[], dict]


def _check_fit(dataset: MedicalDataset, data: DataConfig, trained: tuple) -> None:
    got = (tuple(dataset.channel_names), tuple(dataset.class_names), data.resolution)
    if got != tuple(trained):
        raise ConditionSetError("the dataset gives channels {}, classes {} at {} px; the generator was trained on {}, "
                                "{} at {} px".format(*got, *trained))


def dataset_sources(data: DataConfig, split: str, trained: tuple) -> list[Source]:
    """The samples of ``split`` that have a lesion mask; ``trained`` = the generator's (channels, classes, size)."""
    dataset = build_dataset(data, split)
    _check_fit(dataset, data, trained)

    def load(record) -> dict:
        sample = dataset.load(record)
        return {"mask": sample["mask"], "region": anatomy(sample["image"])}

    sources = [Source(r.sample_id, r.subject_id, r.caption, lambda r=r: load(r))
               for r in dataset.records if dataset.has_lesion_mask(r)]
    if not sources:
        raise ConditionSetError(f"{data.root}: the {split} split has no sample with a lesion mask")
    return sources


def folder_sources(folder: str | Path, class_names: Sequence[str], resolution: int) -> list[Source]:
    """Every mask file of ``folder`` (named by its stem; a region of the whole image, no caption)."""
    files = condition_files(folder)
    if not files:
        raise ConditionSetError(f"{folder}: no mask files")

    def load(path: Path) -> dict:
        mask = read_mask_file(path, class_names, resolution)
        return {"mask": mask, "region": torch.ones(mask.shape[1:], dtype=torch.bool)}

    return [Source(name, name, "", lambda p=path: load(p)) for name, path in files.items()]


class HealthyReferences:
    """The healthy slices of ``split``: ``pick(subject, seed)`` -> (name, image (C, S, S), mask (K, S, S))."""

    def __init__(self, data: DataConfig, split: str, trained: tuple) -> None:
        self.dataset = build_dataset(dataclasses.replace(data, slices="healthy"), split)
        _check_fit(self.dataset, data, trained)
        self.records = [r for r in self.dataset.records if r.label == "healthy"]
        if not self.records:
            raise ConditionSetError(f"{data.root}: the {split} split has no healthy slice to insert lesions into "
                                    "(reference mode needs MRI slices without a lesion)")
        self.by_subject: dict[str, list[int]] = {}
        for index, record in enumerate(self.records):
            self.by_subject.setdefault(record.subject_id, []).append(index)

    def pick(self, subject: str, seed: int) -> tuple[str, Tensor, Tensor]:
        """A healthy slice of ``subject`` if it has one, else of any subject, chosen by ``seed``."""
        pool = self.by_subject.get(subject) or range(len(self.records))
        record = self.records[random.Random(seed).choice(list(pool))]
        sample = self.dataset.load(record)
        return record.sample_id, sample["image"], sample["mask"]
