"""``data.extra_train``: folders in the ``folder`` layout whose images join the training split, and only it.

Synthetic images from ``meddtfm augment`` are added this way to a real dataset's training split, so a
segmenter trains on real + synthetic images and is validated and tested on real subjects only. Each
folder is read whole (``split="all"``) by its own ``FolderDataset`` (at the real dataset's resolution and
bad-sample policy), which decodes its records; they are tagged with the folder's ``origin`` and their
ids prefixed with ``extraK/``. A folder's channel count and classes must be the real dataset's.
"""
from __future__ import annotations

import dataclasses

from ..config import DataConfig
from .base import MedicalDataset
from .errors import BadSampleError
from .folder import FolderDataset


def add_extra_train(dataset: MedicalDataset, cfg: DataConfig) -> MedicalDataset:
    """``dataset`` (a training split) with the records of every ``cfg.extra_train`` folder appended."""
    for k, root in enumerate(cfg.extra_train, start=1):
        folder_cfg = dataclasses.replace(cfg, name="folder", root=root, val_fraction=0.0, test_fraction=0.0,
                                         train_fraction=1.0, extra_train=[])
        folder = FolderDataset(folder_cfg, "all", dataset.seed)
        if folder.num_channels != dataset.num_channels or tuple(folder.class_names) != tuple(dataset.class_names):
            raise BadSampleError(root, f"data.extra_train folder has {folder.num_channels} channels and classes "
                                       f"{list(folder.class_names)}; the training data has {dataset.num_channels} "
                                       f"({', '.join(dataset.channel_names)}) and {list(dataset.class_names)}")
        dataset.extra.append(folder)
        dataset.records += [dataclasses.replace(r, sample_id=f"extra{k}/{r.sample_id}", origin=k)
                            for r in folder.records]
    return dataset
