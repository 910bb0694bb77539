"""The dataset catalogue: every loader of ``meddtfm.data`` by name, with a one-line description.

It sits in the config layer so that ``data.name`` is checked when a config loads, before any loader
is imported. Entries are import paths, resolved by ``meddtfm.data.dataset_class`` on first use, so a
loader's dependencies (nibabel, Pillow, ...) load only when that dataset is used. A new dataset is its
``MedicalDataset`` module in ``meddtfm/data/`` plus one line here.
"""
from __future__ import annotations

from ..registry import Registry

DATASETS: Registry[type] = Registry("dataset")
DATASETS.add_lazy("phantoms", "built-in procedural brain-MRI or dermoscopy phantoms (data.phantom_kind), no download",
                  "meddtfm.data.phantoms:PhantomDataset")
DATASETS.add_lazy("brats2021", "BraTS 2021 NIfTI volumes per case, as 2D axial slices (data.slices)",
                  "meddtfm.data.brats:BraTSDataset")
DATASETS.add_lazy("isic2019", "ISIC 2019 dermoscopy with captions, lesion masks in the ISIC 2018 Task 1 layout",
                  "meddtfm.data.isic:ISICDataset")
DATASETS.add_lazy("lgg", "TCGA lower-grade glioma MRI (Kaggle kaggle_3m): RGB slices and FLAIR abnormality masks",
                  "meddtfm.data.lgg:LGGDataset")
DATASETS.add_lazy("folder", "a folder of 2D images with optional masks and captions (data.root)",
                  "meddtfm.data.folder:FolderDataset")
