"""A generic folder of 2D images, optional masks and optional captions.

::

    root/images/<stem>.png|.jpg|.tif     1-channel (grayscale) or 3-channel (RGB), 8- or 16-bit
    root/images/<stem>.nii.gz            or a 2D NIfTI, ``H x W x C`` float32 in [-1, 1] (any C; axis 0 = rows)
    root/masks/<stem>.png|.tif|.nii.gz   optional, matched to its image by file stem
    root/captions.csv                    optional: image (the stem), caption, optional subject
    root/classes.txt                     optional: one "value name" line per lesion class, e.g. "2 edema"
    root/channels.txt                    optional (required for C not 1 or 3): one channel name per line

Samples are ``C x S x S`` images in [-1, 1] (8-bit by /255, 16-bit by /65535, float NIfTI as stored) and
``K x S x S`` masks.
With ``classes.txt`` masks are integer label maps (0 = background) and any value it does not list is
an error; without it masks are binary (0/1 or 0/255) with one class, "lesion". The channel count is
taken from the first image (the only pixels the scan decodes); every other image must match it. Channel names
are the lines of ``channels.txt`` (``meddtfm augment`` writes it for four-sequence BraTS: flair, t1, t1ce,
t2), else gray or R, G, B.
An image without a mask is a caption-only sample. ``subject_id`` is the ``subject`` column of
``captions.csv`` where given (images of one patient or lesion then share a split), else the stem.
"""
from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from .base import Decoded, MedicalDataset, Record
from .common import (
    IMAGE_SUFFIXES,
    by_stem,
    data_root,
    file_stem,
    list_images,
    read_binary_mask,
    read_channels,
    read_csv,
    read_label_mask,
    report_bad,
)
from .errors import BadSampleError
from .io import read_image

CHANNELS = {1: ("gray",), 3: ("R", "G", "B")}


def read_classes(path: Path) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Label values and class names from ``classes.txt`` (``value name`` per line; blank and ``#`` lines skipped)."""
    values: list[int] = []
    names: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) == 0:
            raise BadSampleError(path, f"line {number}: expected 'value name' with an integer value > 0, got {line!r}")
        if int(parts[0]) in values or parts[1] in names:
            raise BadSampleError(path, f"line {number}: value or name repeated in {line!r}")
        values.append(int(parts[0]))
        names.append(parts[1])
    if not values:
        raise BadSampleError(path, "lists no classes")
    return tuple(values), tuple(names)


def read_captions(path: Path) -> dict[str, dict[str, str]]:
    """Image stem -> ``{"caption": ..., "subject": ...}``; ``image`` may also be a file name with its suffix."""
    frame = read_csv(path, ("image", "caption"), dtype=str, keep_default_na=False)
    rows = frame.to_dict("index")
    return {file_stem(Path(k)) if k.lower().endswith(IMAGE_SUFFIXES) else k: v for k, v in rows.items()}


class FolderDataset(MedicalDataset):
    """``images/`` with optional ``masks/``, ``captions.csv`` and ``classes.txt``: ``C x S x S`` / ``K x S x S``."""

    def __init__(self, cfg: DataConfig, split: str = "train", seed: int = 0) -> None:
        classes = data_root(cfg) / "classes.txt"
        self.class_values: tuple[int, ...] | None = None
        self.class_names = ("lesion",)
        if classes.is_file():
            self.class_values, self.class_names = read_classes(classes)
        super().__init__(cfg, split, seed)

    def scan(self) -> list[Record]:
        root = data_root(self.cfg)
        images = by_stem(list_images(root / "images"))
        masks = by_stem(list_images(root / "masks")) if (root / "masks").is_dir() else {}
        captions = read_captions(root / "captions.csv") if (root / "captions.csv").is_file() else {}
        if not images:
            return []
        self.channel_names = self._first_channels(list(images.values()))
        records = []
        for stem, path in images.items():
            row = captions.get(stem, {})
            mask = masks.get(stem)
            records.append(Record(
                sample_id=stem,
                subject_id=row.get("subject", "").strip() or stem,
                paths=(str(path),),
                mask_path=str(mask) if mask is not None else None,
                caption=row.get("caption", "").strip(),
            ))
        return records

    def _first_channels(self, images: list[Path]) -> tuple[str, ...]:
        """Channel names (``channels.txt``, else by count: 1 gray, 3 RGB) checked against the first decodable
        image; the others must match them."""
        listed = data_root(self.cfg) / "channels.txt"
        names = tuple(line.strip() for line in listed.read_text().splitlines() if line.strip()) \
            if listed.is_file() else None
        for path in images:
            try:
                channels = read_image(path).shape[2]
                if names is not None and channels != len(names):
                    raise BadSampleError(path, f"has {channels} channels; {listed} names {len(names)}")
                if names is None and channels not in CHANNELS:
                    raise BadSampleError(path, f"has {channels} channels, expected 1 (grayscale) or 3 (RGB); name "
                                               f"them, one per line, in {listed}")
                return names or CHANNELS[channels]
            except BadSampleError as err:
                report_bad(self, err)
        raise BadSampleError(images[0].parent, "no image can be decoded")

    def decode(self, record: Record) -> Decoded:
        image = read_channels(record.paths[0], self.channel_names)
        if record.mask_path is None:
            return Decoded(image, None)
        size = image.shape[1:]
        if self.class_values is None:
            return Decoded(image, read_binary_mask(record.mask_path, size))
        return Decoded(image, read_label_mask(record.mask_path, size, self.class_values))
