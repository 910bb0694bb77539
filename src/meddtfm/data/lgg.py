"""TCGA lower-grade glioma brain MRI (Buda et al. 2019, "kaggle_3m") in its official layout.

::

    root/<patient folder>/<patient folder>_<n>.tif|.png        RGB = pre-contrast, FLAIR, post-contrast
    root/<patient folder>/<patient folder>_<n>_mask.tif|.png   0/255 FLAIR abnormality

Samples are ``C x S x S`` images (``data.modalities``, a subset of ``pre``, ``flair``, ``post`` in
the given order; empty means all three) and a ``1 x S x S`` mask. The files are already windowed to
0-255 per image by their publisher, so intensities are only mapped linearly to [-1, 1], not
renormalised. ``subject_id`` is the TCGA patient id: the folder name without its trailing scan date
(``TCGA_CS_4941_19960909`` -> ``TCGA_CS_4941``), which is also ``data.csv``'s key; ``data.csv``
(coded genomic / clinical labels) is ignored.

``data.slices`` needs per-slice flags, so the scan reads every mask (small PNGs) and the FLAIR of each
tumour-free slice once, then caches the flags as JSON (``cache.save_cached``) keyed on the files'
paths, mtimes and sizes. Slice kinds (``Record.label``):

* ``tumour``: the mask is non-empty (always counted as brain);
* ``healthy``: empty mask and a brain fraction >= ``data.min_brain_fraction``, where brain is FLAIR > 10/255;
* ``no brain``: empty mask and less brain than that.

``brain`` selects tumour and healthy slices; ``all`` selects every slice. An image whose mask file is
missing, or whose mask is not binary, is a bad sample (raised, or skipped under ``on_bad_sample: skip``).
"""
from __future__ import annotations

import re
from pathlib import Path

from tqdm import tqdm

from ..config import ConfigError, DataConfig
from .base import Decoded, MedicalDataset, Record
from .cache import file_signature, load_cached, save_cached
from .common import by_stem, check_channels, data_root, list_images, read_binary_mask, read_channels, report_bad
from .errors import BadSampleError
from .io import binary_mask, read_image

SEQUENCES = ("pre", "flair", "post")
BRAIN_THRESHOLD = 10  # FLAIR uint8 value above which a pixel counts as brain (background noise sits below ~6)
CAPTION = "brain MRI, lower-grade glioma"
SELECTIONS = {"tumour": ("tumour",), "healthy": ("healthy",), "brain": ("tumour", "healthy"),
              "all": ("tumour", "healthy", "no brain")}
_PATIENT = re.compile(r"^(TCGA_[A-Z0-9]+_[A-Z0-9]+)_\d{8}$")
_SLICE = re.compile(r"^(.+)_(\d+)$")


def patient_id(folder: str) -> str:
    """The patient of a kaggle_3m folder: its name without the trailing ``_YYYYMMDD`` scan date."""
    match = _PATIENT.match(folder)
    return match.group(1) if match else folder


def slice_flags(image: Path, mask: Path) -> dict:
    """``{"tumour": bool, "brain": fraction or None}``, or ``{"path", "problem"}`` for an unusable slice."""
    try:
        if binary_mask(read_image(mask), mask).any():
            return {"tumour": True, "brain": None}
        pixels = read_image(image)
        check_channels(pixels, SEQUENCES, image)
        return {"tumour": False, "brain": float((pixels[:, :, 1] > BRAIN_THRESHOLD).mean())}
    except BadSampleError as err:
        return {"path": err.path, "problem": err.problem}


class LGGDataset(MedicalDataset):
    """kaggle_3m slices: ``C x S x S`` MRI (pre / FLAIR / post) and a ``1 x S x S`` FLAIR-abnormality mask."""

    class_names = ("FLAIR abnormality",)
    has_slices = True

    def __init__(self, cfg: DataConfig, split: str = "train", seed: int = 0) -> None:
        wanted = [m.lower() for m in cfg.modalities] or list(SEQUENCES)
        unknown = [m for m in wanted if m not in SEQUENCES]
        if unknown or len(set(wanted)) != len(wanted):
            raise ConfigError(f"data.modalities={list(cfg.modalities)}: LGG sequences are distinct names "
                              f"from {', '.join(SEQUENCES)}" + (f"; unknown: {unknown}" if unknown else ""))
        self.channel_names = tuple(wanted)
        self._channels = [SEQUENCES.index(m) for m in wanted]
        super().__init__(cfg, split, seed)

    def scan(self) -> list[Record]:
        root = data_root(self.cfg)
        slices: list[tuple[Path, int, Path, Path]] = []  # folder, slice number, image, mask
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = by_stem(list_images(folder))
            for stem, image in files.items():
                match = _SLICE.match(stem)
                if stem.endswith("_mask") or not match:
                    continue
                mask = files.get(f"{stem}_mask")
                if mask is None:
                    report_bad(self, BadSampleError(folder / f"{stem}_mask{image.suffix}", "mask file is missing"))
                    continue
                slices.append((folder, int(match.group(2)), image, mask))
        slices.sort(key=lambda s: (s[0].name, s[1]))
        flags = self._flags(root, [(image, mask) for _, _, image, mask in slices])
        records = []
        for folder, number, image, mask in slices:
            flag = flags[image.relative_to(root).as_posix()]
            if "problem" in flag:
                report_bad(self, BadSampleError(flag["path"], flag["problem"]))
                continue
            kind = ("tumour" if flag["tumour"] else
                    "healthy" if flag["brain"] >= self.cfg.min_brain_fraction else "no brain")
            if kind not in SELECTIONS[self.cfg.slices]:
                continue
            records.append(Record(
                sample_id=image.stem,
                subject_id=patient_id(folder.name),
                paths=(str(image),),
                mask_path=str(mask),
                caption=f"{CAPTION}, {'FLAIR abnormality' if kind == 'tumour' else 'no FLAIR abnormality'}",
                slice_index=number,
                label=kind,
            ))
        return records

    def _flags(self, root: Path, pairs: list[tuple[Path, Path]]) -> dict[str, dict]:
        """Per-slice ``slice_flags`` keyed by the image's path relative to ``root``, from the cache when valid."""
        key = {"root": str(root.resolve()), "brain_threshold": BRAIN_THRESHOLD, "version": 1,
               "files": file_signature((p for pair in pairs for p in pair), root)}
        flags = load_cached("lgg", key)
        if flags is None:
            flags = {image.relative_to(root).as_posix(): slice_flags(image, mask)
                     for image, mask in tqdm(pairs, desc="LGG: reading masks", unit="slice", leave=False)}
            save_cached("lgg", key, flags)
        return flags

    def decode(self, record: Record) -> Decoded:
        image = read_channels(record.paths[0], SEQUENCES)[self._channels]
        return Decoded(image, read_binary_mask(record.mask_path, image.shape[1:]))
