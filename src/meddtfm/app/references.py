"""Healthy reference slices the demo offers to pick: the test split of the model's training data, when it is here."""
from __future__ import annotations

import dataclasses
import logging

from torch import Tensor

from ..data import build_dataset
from ..pipeline import MedDTFMPipeline
from ..synthesis import training_data_config

log = logging.getLogger(__name__)


def healthy_slices(pipe: MedDTFMPipeline, count: int = 8) -> dict[str, Tensor]:
    """Up to ``count`` healthy slices ``(C, R, R)`` in [-1, 1] of the test split, by sample name; empty when the
    model cannot use references or its training data is not on this machine."""
    if not pipe.supports_reference or count <= 0:
        return {}
    try:
        data = training_data_config(pipe.model.data, None, [])
        dataset = build_dataset(dataclasses.replace(data, slices="healthy"), "test")
        picks = [dataset[i] for i in range(min(count, len(dataset)))]
    except Exception as err:  # data moved, not downloaded, or a dataset without healthy slices: offer none
        log.info("no healthy reference slices to offer (%s)", err)
        return {}
    return {f"healthy {s['sample_id']}": s["image"] for s in picks}
