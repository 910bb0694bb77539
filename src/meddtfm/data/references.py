"""Reference images for training the reference path of Eq. 6: another image of the same subject.

Reference-guided synthesis seeds bridge 0 with ``f_ref = E_0(I_ref)`` of a *reference* image, at
sampling time a healthy slice of the patient. Training must give the generator what sampling gives
it, so a training sample's reference is never the sample itself (its own ``E_0(x1)`` would be the
answer that ``L_DT`` level 0 then asks for, a copy rather than a lesson; docs/design.md):

* ``other_slice`` (``flow.reference_source``; BraTS, LGG, MRI phantoms): another slice of the same
  subject, a healthy one where the subject has any, nearest in slice position, as
  ``meddtfm sample --dataset-reference healthy`` picks at sampling time;
* ``same_lesion`` (ISIC): another image of the same ``lesion_id``.

A sample whose subject has no other image trains without a reference (``has_reference`` False). The
reference is read without augmentation, as a real slice reaches ``sample``.

Example::

    pool = build_dataset(dataclasses.replace(cfg, slices="healthy"), "train")
    chosen = choose_references(train_set.records, train_set.records + pool.records)
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from ..config import ConfigError

if TYPE_CHECKING:
    from .base import MedicalDataset, Record


def choose_references(targets: Sequence[Record], pool: Sequence[Record]) -> dict[str, Record | None]:
    """Per target ``sample_id``: a record of ``pool`` of the same subject and another ``sample_id``, or None.

    Healthy (``label == "healthy"``) candidates first, then the nearest ``slice_index``, then the
    smallest ``sample_id``: deterministic, whatever the order of either list.
    """
    by_subject: dict[str, dict[str, Record]] = defaultdict(dict)
    for r in pool:
        by_subject[r.subject_id].setdefault(r.sample_id, r)
    chosen: dict[str, Record | None] = {}
    for t in targets:
        candidates = [r for r in by_subject[t.subject_id].values() if r.sample_id != t.sample_id]
        chosen[t.sample_id] = min(candidates, default=None, key=lambda r: (
            r.label != "healthy", abs(r.slice_index - t.slice_index), r.sample_id))
    return chosen


@dataclass
class References:
    """The reference chosen for each sample of a dataset; ``pool`` decodes them (any record of its kind)."""

    pool: MedicalDataset
    chosen: dict[str, Record | None]

    def sample_keys(self, record: Record) -> dict:
        """``reference`` (C x S x S in [-1, 1], black without one), ``has_reference``, ``reference_id``."""
        ref = self.chosen.get(record.sample_id)
        if ref is None:
            size = self.pool.cfg.resolution
            image: Tensor = torch.full((self.pool.num_channels, size, size), -1.0)
            return {"reference": image, "has_reference": torch.tensor(False), "reference_id": ""}
        return {"reference": self.pool.plain_image(ref), "has_reference": torch.tensor(True),
                "reference_id": ref.sample_id}


def attach_references(dataset: MedicalDataset, source: str) -> References:
    """Give every sample of ``dataset`` its reference (module doc); returns what was attached.

    ``other_slice`` reads the healthy slices of the same split as well when ``data.slices`` leaves
    them out (``tumour``); the split is by subject, so a reference never comes from another split.
    """
    from . import build_dataset

    if source == "other_slice" and not dataset.has_slices:
        raise ConfigError(f"flow.reference_source=other_slice needs a dataset of slices (BraTS, LGG, MRI phantoms); "
                          f"{dataset.cfg.name} has single images: use flow.reference_source=same_lesion")
    if source == "same_lesion" and dataset.has_slices:
        raise ConfigError(f"flow.reference_source=same_lesion is for single-image datasets (ISIC); {dataset.cfg.name} "
                          "has slices: use flow.reference_source=other_slice")
    if source not in ("other_slice", "same_lesion"):
        raise ConfigError(f"flow.reference_source={source!r} draws no references")
    pool = list(dataset.records)
    if source == "other_slice" and dataset.cfg.slices == "tumour":
        healthy = build_dataset(dataclasses.replace(dataset.cfg, slices="healthy", augment=False), dataset.split,
                                dataset.seed)
        pool += healthy.records
    references = References(dataset, choose_references(dataset.records, pool))
    dataset.references = references
    return references
