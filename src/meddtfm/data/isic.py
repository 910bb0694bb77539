"""ISIC 2019 dermoscopy in its official layout, with optional lesion masks in the ISIC 2018 Task 1 layout.

::

    root/ISIC_2019_Training_Input/ISIC_XXXXXXX.jpg
    root/ISIC_2019_Training_GroundTruth.csv          image + one-hot MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK
    root/ISIC_2019_Training_Metadata.csv             optional: image, age_approx, anatom_site_general, lesion_id, sex
    root/ISIC2018_Task1_Training_GroundTruth/ISIC_XXXXXXX_segmentation.png   optional 0/255 masks

Samples are ``3 x S x S`` RGB in [-1, 1] and a ``1 x S x S`` lesion mask. Most ISIC 2019 images have
no segmentation: they are caption-only samples (``has_mask`` False). The caption is built from the
diagnosis and whatever metadata is present, e.g. "dermoscopy, melanoma, posterior torso, female,
about 55 years". ``subject_id`` is the ``lesion_id`` (several images of one lesion must share a split,
or the validation set leaks), else the image id. A grayscale or RGBA image is an error, not converted.
Masks are matched by exact image id, so ISIC 2019's ``*_downsampled`` images (whose 2018 masks are
at the original resolution) stay caption-only.
Scanning lists the folders and reads the CSVs only; pixels are decoded on access.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import Decoded, MedicalDataset, Record
from .common import by_stem, data_root, list_images, read_binary_mask, read_channels, read_csv, report_bad
from .errors import BadSampleError

IMAGE_DIR = "ISIC_2019_Training_Input"
GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
MASK_DIR = "ISIC2018_Task1_Training_GroundTruth"
MASK_SUFFIX = "_segmentation"
DIAGNOSES = {
    "MEL": "melanoma",
    "NV": "melanocytic nevus",
    "BCC": "basal cell carcinoma",
    "AK": "actinic keratosis",
    "BKL": "benign keratosis",
    "DF": "dermatofibroma",
    "VASC": "vascular lesion",
    "SCC": "squamous cell carcinoma",
    "UNK": "unknown",
}


def read_diagnoses(csv: Path) -> dict[str, str | None]:
    """Image id -> diagnosis abbreviation, or None where the row is not one-hot over ``DIAGNOSES``."""
    frame = read_csv(csv, ("image", *DIAGNOSES))
    onehot = frame[list(DIAGNOSES)].apply(pd.to_numeric, errors="coerce")
    valid = onehot.isin([0, 1]).all(axis=1) & (onehot.sum(axis=1) == 1)
    labels = onehot.fillna(0).idxmax(axis=1)
    return {image_id: label if ok else None for image_id, label, ok in zip(frame.index, labels, valid)}


def read_metadata(csv: Path) -> dict[str, dict]:
    """Image id -> metadata row (NaN for empty fields); an absent metadata CSV gives no metadata."""
    if not csv.exists():
        return {}
    return read_csv(csv, ("image",)).to_dict("index")


def caption(diagnosis: str, meta: dict) -> str:
    """ "dermoscopy, <diagnosis>[, <site>][, <sex>][, about <age> years]" from the fields that are present."""
    parts = ["dermoscopy", DIAGNOSES[diagnosis]]
    for field in ("anatom_site_general", "sex"):
        if isinstance(meta.get(field), str) and meta[field].strip():
            parts.append(meta[field].strip())
    age = pd.to_numeric(meta.get("age_approx"), errors="coerce")
    if pd.notna(age):
        parts.append(f"about {int(age)} years")
    return ", ".join(parts)


class ISICDataset(MedicalDataset):
    """ISIC 2019 images (``3 x S x S``) with optional ISIC 2018 lesion masks (``1 x S x S``) and captions."""

    channel_names = ("R", "G", "B")
    class_names = ("lesion",)

    def scan(self) -> list[Record]:
        root = data_root(self.cfg)
        images = by_stem(list_images(root / IMAGE_DIR))
        csv = root / GROUND_TRUTH
        diagnoses = read_diagnoses(csv)
        metadata = read_metadata(root / METADATA)
        mask_dir = root / MASK_DIR
        masks = by_stem(list_images(mask_dir)) if mask_dir.is_dir() else {}
        records = []
        for image_id, path in images.items():
            if image_id not in diagnoses:
                report_bad(self, BadSampleError(path, f"image id {image_id} has no row in {csv}"))
                continue
            diagnosis = diagnoses[image_id]
            if diagnosis is None:
                problem = (f"row {image_id} of {csv} is not one-hot over {', '.join(DIAGNOSES)} "
                           "(exactly one 1, the rest 0)")
                report_bad(self, BadSampleError(path, problem))
                continue
            meta = metadata.get(image_id, {})
            lesion = meta.get("lesion_id")
            mask = masks.get(image_id + MASK_SUFFIX)
            records.append(Record(
                sample_id=image_id,
                subject_id=lesion.strip() if isinstance(lesion, str) and lesion.strip() else image_id,
                paths=(str(path),),
                mask_path=str(mask) if mask is not None else None,
                caption=caption(diagnosis, meta),
                label=diagnosis,
            ))
        return records

    def decode(self, record: Record) -> Decoded:
        image = read_channels(record.paths[0], self.channel_names)
        if record.mask_path is None:
            return Decoded(image, None)
        return Decoded(image, read_binary_mask(record.mask_path, image.shape[1:]))
