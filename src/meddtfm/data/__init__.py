"""Datasets in their official layouts plus the built-in phantoms, by name in ``DATASETS``.

A new dataset is a ``MedicalDataset`` subclass in its own module, registered here; ``data.name``'s
check (``meddtfm.config.DATASETS``) lists the same names, as the config layer cannot import this one.
"""
from __future__ import annotations

from ..config import DataConfig
from ..registry import Registry
from .base import MedicalDataset, Record, loader_workers, usable_cpus
from .errors import BadSampleError
from .phantoms import PhantomDataset

# Loaders other than the phantoms are imported on first use, so that their dependencies stay optional.
DATASETS: Registry[type[MedicalDataset]] = Registry("dataset")
DATASETS.add("phantoms", "built-in procedural brain-MRI or dermoscopy phantoms (data.phantom_kind), no download",
             PhantomDataset)
DATASETS.add_lazy("brats2021", "BraTS 2021 NIfTI volumes per case, as 2D axial slices (data.slices)",
                  "meddtfm.data.brats:BraTSDataset")
DATASETS.add_lazy("isic2019", "ISIC 2019 dermoscopy with captions, lesion masks in the ISIC 2018 Task 1 layout",
                  "meddtfm.data.isic:ISICDataset")
DATASETS.add_lazy("lgg", "TCGA lower-grade glioma MRI (Kaggle kaggle_3m): RGB slices and FLAIR abnormality masks",
                  "meddtfm.data.lgg:LGGDataset")
DATASETS.add_lazy("folder", "a folder of 2D images with optional masks and captions (data.root)",
                  "meddtfm.data.folder:FolderDataset")


def dataset_class(name: str) -> type[MedicalDataset]:
    """The loader for ``data.name``; ``UnknownNameError`` (a ``ValueError``) names the choices."""
    return DATASETS[name]


def build_dataset(cfg: DataConfig, split: str = "train", seed: int = 0) -> MedicalDataset:
    """Construct the ``split`` ("train", "val", "test" or "all") of the dataset ``cfg`` describes."""
    if cfg.name != "phantoms" and not cfg.root:
        raise ValueError(f"data.root is not set: point it at your {cfg.name} download (--set data.root=/path)")
    return dataset_class(cfg.name)(cfg, split=split, seed=seed)


__all__ = ["DATASETS", "BadSampleError", "MedicalDataset", "Record", "build_dataset", "dataset_class",
           "loader_workers", "usable_cpus"]
