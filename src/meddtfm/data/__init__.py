"""Datasets in their official layouts plus the built-in phantoms, behind one factory."""
from __future__ import annotations

from ..config import DataConfig
from .base import MedicalDataset, Record, loader_workers, usable_cpus
from .errors import BadSampleError
from .phantoms import PhantomDataset


def dataset_class(name: str) -> type[MedicalDataset]:
    """The loader for ``data.name`` (imported lazily so each loader's dependencies stay optional)."""
    if name == "phantoms":
        return PhantomDataset
    if name == "brats2021":
        from .brats import BraTSDataset

        return BraTSDataset
    if name == "isic2019":
        from .isic import ISICDataset

        return ISICDataset
    if name == "lgg":
        from .lgg import LGGDataset

        return LGGDataset
    if name == "folder":
        from .folder import FolderDataset

        return FolderDataset
    raise ValueError(f"unknown dataset {name!r}")


def build_dataset(cfg: DataConfig, split: str = "train", seed: int = 0) -> MedicalDataset:
    """Construct the ``split`` ("train", "val", "test" or "all") of the dataset ``cfg`` describes."""
    if cfg.name != "phantoms" and not cfg.root:
        raise ValueError(f"data.root is not set: point it at your {cfg.name} download (--set data.root=/path)")
    return dataset_class(cfg.name)(cfg, split=split, seed=seed)


__all__ = ["BadSampleError", "MedicalDataset", "Record", "build_dataset", "dataset_class", "loader_workers", "usable_cpus"]
