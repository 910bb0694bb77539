"""Datasets in their official layouts plus the built-in phantoms, by name in ``DATASETS``.

A new dataset is a ``MedicalDataset`` subclass in its own module plus one line in the catalogue
``meddtfm.config.datasets.DATASETS`` (re-exported here), which ``data.name``'s check reads too.
"""
from __future__ import annotations

from ..config import DataConfig
from ..config.datasets import DATASETS
from .base import MedicalDataset, Record, loader_workers, usable_cpus
from .errors import BadSampleError
from .extra import add_extra_train


def dataset_class(name: str) -> type[MedicalDataset]:
    """The loader for ``data.name``; ``UnknownNameError`` (a ``ValueError``) names the choices."""
    return DATASETS[name]


def build_dataset(cfg: DataConfig, split: str = "train", seed: int = 0) -> MedicalDataset:
    """Construct the ``split`` ("train", "val", "test" or "all") of the dataset ``cfg`` describes; the training
    split keeps ``data.train_fraction`` of its subjects and gains the ``data.extra_train`` folders (``extra``)."""
    if cfg.name != "phantoms" and not cfg.root:
        raise ValueError(f"data.root is not set: point it at your {cfg.name} download (--set data.root=/path)")
    dataset = dataset_class(cfg.name)(cfg, split=split, seed=seed)
    return add_extra_train(dataset, cfg) if split == "train" else dataset


__all__ = ["DATASETS", "BadSampleError", "MedicalDataset", "Record", "build_dataset", "dataset_class",
           "loader_workers", "usable_cpus"]
