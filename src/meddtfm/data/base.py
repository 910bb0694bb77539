"""The common sample format and the dataset base class every loader derives from.

A sample is a dict:

| key | value |
|---|---|
| ``image`` | float tensor ``C x S x S`` in [-1, 1] |
| ``mask`` | float tensor ``K x S x S``, one-hot over the lesion classes (zeros when there is no mask) |
| ``has_mask`` | bool tensor: False for caption-only samples (e.g. ISIC images without a segmentation) |
| ``caption`` | str, "" when the dataset has none |
| ``subject_id`` | str, the split key: patient or lesion |
| ``sample_id`` | str, unique per sample |
| ``slice_index`` | int, axial slice of a volume, -1 for 2D images |
| ``source`` | str, the first file the image came from (NIfTI outputs reuse its header) |

With references attached (``meddtfm.data.references``, for training the reference path) a sample also
has ``reference`` (``C x S x S``, another image of the same subject), ``has_reference`` and ``reference_id``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from .errors import BadSampleError
from .splits import SPLITS, assign_splits, kept_subjects
from .transforms import augment, paired_augmentation, resize_pair

if TYPE_CHECKING:
    from .references import References

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loader_workers(requested: int) -> int:
    """``data.num_workers`` capped at the usable CPUs: more workers than cores only contend.

    Capping never changes the data: augmentation is seeded per sample and epoch, not per worker.
    """
    return min(requested, usable_cpus())


@dataclass(frozen=True)
class Record:
    """One 2D sample before decoding: where its files are and who it belongs to."""

    sample_id: str
    subject_id: str
    paths: tuple[str, ...]
    mask_path: str | None = None
    caption: str = ""
    slice_index: int = -1
    label: str = ""  # a class-level tag used for summaries (diagnosis, "tumour" / "healthy")
    origin: int = 0  # 0: this dataset's own sample; k > 0: of the k-th data.extra_train folder


@dataclass
class Decoded:
    """A decoded sample at native size: ``image`` C x H x W in [-1, 1], ``mask`` K x H x W or None."""

    image: np.ndarray
    mask: np.ndarray | None


@dataclass
class SkipLog:
    """Samples dropped under ``on_bad_sample: skip``, with their reasons."""

    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, err: BadSampleError) -> None:
        if err.path not in self.reasons:
            log.warning("skipping bad sample %s", err)
        self.reasons[err.path] = err.problem


class MedicalDataset(Dataset, ABC):
    """A split of a dataset in its official layout; subclasses implement ``scan`` and ``decode``."""

    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    has_slices: bool = False  # samples are slices of volumes (``data.slices`` selects among them)

    def __init__(self, cfg: DataConfig, split: str = "train", seed: int = 0) -> None:
        if split not in SPLITS + ("all",):
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS + ('all',)}")
        self.cfg, self.split, self.seed = cfg, split, seed
        self.epoch = 0
        self.skipped = SkipLog()
        self.references: References | None = None
        records = self.scan()
        if not records:
            raise BadSampleError(cfg.root or self.__class__.__name__, "no samples found (empty or wrong folder?)")
        if split == "all":
            self.records = records
        else:
            assignment = assign_splits((r.subject_id for r in records), cfg.val_fraction, cfg.test_fraction,
                                        cfg.split_seed)
            self.records = [r for r in records if assignment[r.subject_id] == split]
        if split == "train" and cfg.train_fraction < 1.0:
            kept = kept_subjects((r.subject_id for r in self.records), cfg.train_fraction, cfg.split_seed)
            self.records = [r for r in self.records if r.subject_id in kept]
        self.extra: list[MedicalDataset] = []  # the data.extra_train folders (``data.extra``), decoding their records
        self._augment = paired_augmentation() if (cfg.augment and split == "train") else None

    @abstractmethod
    def scan(self) -> list[Record]:
        """List every sample of the dataset (all splits), cheaply: no pixel decoding per 2D image."""

    @abstractmethod
    def decode(self, record: Record) -> Decoded:
        """Read one sample at native size; raise ``BadSampleError`` for anything unusable."""

    def has_lesion_mask(self, record: Record) -> bool:
        """Whether ``record`` comes with a lesion mask, without decoding it: by default, whether it has a mask file."""
        return record.mask_path is not None

    def describe(self) -> dict:
        """Facts about this split's files for ``data inspect`` beyond the decoded samples (BraTS: native
        intensities, slices per class); empty by default."""
        return {}

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call before each epoch; workers pick it up)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        for attempt in range(len(self.records)):
            record = self.records[(index + attempt) % len(self.records)]
            try:
                return self.load(record)
            except BadSampleError as err:
                if self.cfg.on_bad_sample == "error":
                    raise
                self.skipped.add(err)
        raise BadSampleError(self.cfg.root or "dataset", "every sample of this split is unusable")

    def load(self, record: Record) -> dict:
        """Decode, check, resize and (train split) augment one record into the sample dict above."""
        return self.prepare(record, self.source_of(record).decode(record))

    def source_of(self, record: Record) -> MedicalDataset:
        """The dataset that decodes ``record``: this one, or the ``data.extra_train`` folder it came from."""
        return self if record.origin == 0 else self.extra[record.origin - 1]

    def prepare(self, record: Record, decoded: Decoded) -> dict:
        """Check, resize and (train split) augment ``decoded``, the native-size pixels of ``record``; with
        references attached, add its reference."""
        self._check_channels(record, decoded.image)
        h, w = decoded.image.shape[1:]
        has_mask = decoded.mask is not None
        mask = decoded.mask if has_mask else np.zeros((self.num_classes, h, w), np.float32)
        image, mask_t = resize_pair(decoded.image, mask, self.cfg.resolution)
        if self._augment is not None:
            image, mask_t = augment(self._augment, image, mask_t, self._sample_seed(record))
        sample = {
            "image": image,
            "mask": mask_t,
            "has_mask": torch.tensor(has_mask),
            "caption": record.caption,
            "subject_id": record.subject_id,
            "sample_id": record.sample_id,
            "slice_index": record.slice_index,
            "source": record.paths[0],
        }
        if self.references is not None:
            sample.update(self.references.sample_keys(record))
        return sample

    def plain_image(self, record: Record) -> torch.Tensor:
        """``record``'s image, ``C x S x S`` in [-1, 1], checked and resized but never augmented."""
        image = self.source_of(record).decode(record).image
        self._check_channels(record, image)
        return resize_pair(image, np.zeros((1, *image.shape[1:]), np.float32), self.cfg.resolution)[0]

    def _check_channels(self, record: Record, image: np.ndarray) -> None:
        if image.shape[0] != self.num_channels:
            raise BadSampleError(record.paths[0], f"has {image.shape[0]} channels, expected {self.num_channels} "
                                                  f"({', '.join(self.channel_names)})")

    def _sample_seed(self, record: Record) -> int:
        """Augmentation seed from (run seed, epoch, sample id): independent of workers and order."""
        key = f"{self.seed}:{self.epoch}:{record.sample_id}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")
