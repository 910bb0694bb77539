"""The output of ``meddtfm augment``: a ready-to-train dataset in the ``folder`` layout (``meddtfm.data.folder``).

::

    OUT/images/<name>.png   the synthetic image: grey (1 channel) or RGB (3 channels), 8-bit;
    OUT/images/<name>.nii.gz  for any other channel count (four-sequence BraTS): ``S x S x C`` float32 in the
                            model's [-1, 1] scale, axis 0 = image rows, identity affine (pixel units)
    OUT/masks/<name>.png    the mask it was drawn for (``.nii.gz``, uint8, beside a NIfTI image): 0/255 for one
                            class, else a label map (``label_values``: BraTS's 1, 2, 4 for NCR, ED, ET)
    OUT/classes.txt         one "value name" line per class (the generator's class names, so the folder can
                            join its dataset's training split through ``data.extra_train``)
    OUT/channels.txt        NIfTI images: one channel name per line (flair, t1, t1ce, t2)
    OUT/captions.csv        image, caption, subject (the subject of the real mask it came from)
    OUT/manifest.csv        one row per candidate image (``FIELDS``): its source mask, reference, seed,
                            variation, the segmenter's Dice and whether it was kept, and the settings
    OUT/augment.json        the request; a rerun with other settings is refused, not mixed in

Candidate i belongs to chunk i // chunk_size and each chunk is drawn as one batch. A chunk's manifest
rows are appended (and flushed to disk) after its files are written, so a chunk with rows is complete and
a rerun draws only the others, as one batch each again: a resumed folder holds exactly the files of an
uninterrupted one.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from torch import Tensor

from ..data.nifti_out import BRATS_LABELS
from ..files import atomic_write, atomic_write_text
from ..viz import to_rgb

FIELDS = ["name", "chunk", "source", "subject", "caption", "reference", "seed", "variation", "varied", "dice",
          "kept", "model", "mode", "nfe", "solver", "cfg", "checkpoint"]
REQUEST = "augment.json"
MANIFEST = "manifest.csv"


class AugmentFolderError(ValueError):
    """An output folder that holds another request's images."""


PNG_CHANNELS = (1, 3)


def label_values(class_names: Sequence[str]) -> tuple[int, ...]:
    """The label value of each class in a mask file: 255 for a single class (a 0/255 mask), BraTS's own
    (1 NCR, 2 ED, 4 ET) for its classes, else 1..K."""
    if len(class_names) == 1:
        return (255,)
    if set(class_names) <= set(BRATS_LABELS):
        return tuple(BRATS_LABELS[c] for c in class_names)
    return tuple(range(1, len(class_names) + 1))


def png_image(image: Tensor) -> Image.Image:
    """``(C, S, S)`` in [-1, 1], C = 1 or 3 -> an 8-bit grey or RGB PIL image."""
    rgb = to_rgb(image)
    return Image.fromarray(rgb if image.shape[0] == 3 else rgb[:, :, 0])


def label_map(mask: Tensor, values: Sequence[int]) -> np.ndarray:
    """One-hot ``(K, S, S)`` -> ``(S, S)`` uint8 label map, class k painted ``values[k]`` (later classes on top)."""
    m = mask.detach().cpu().numpy() > 0.5
    labels = np.zeros(m.shape[1:], np.uint8)
    for k in range(len(m)):
        labels[m[k]] = values[k]
    return labels


def save_nifti(array: np.ndarray, path: Path) -> None:
    """``array`` (axis 0 = image rows) as a gzipped NIfTI with an identity affine at ``path`` (whatever its name;
    gzip's timestamp fixed, so the same array always gives the same bytes)."""
    path.write_bytes(gzip.compress(nib.Nifti1Image(array, np.eye(4)).to_bytes(), mtime=0))


class AugmentFolder:
    """``OUT`` for one request: which chunks are done, and the writing of a chunk, of captions.csv."""

    def __init__(self, out: Path, request: dict, class_names: Sequence[str], channel_names: Sequence[str]) -> None:
        self.out = Path(out)
        self.nifti = len(channel_names) not in PNG_CHANNELS
        self.values = label_values(class_names)
        saved = self.out / REQUEST
        if saved.is_file():
            before = json.loads(saved.read_text())
            changed = sorted(k for k in {*before, *request} if before.get(k) != request.get(k))
            if changed:
                raise AugmentFolderError(f"{self.out} holds images of another request ({', '.join(changed)} "
                                         "differ); use another --out, or delete that folder")
        elif (self.out / MANIFEST).is_file():
            raise AugmentFolderError(f"{self.out} has a {MANIFEST} but no {REQUEST}: not written by meddtfm augment")
        for sub in ("images", "masks"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, json.dumps(request, indent=1, sort_keys=True))
        atomic_write_text(self.out / "classes.txt", "".join(f"{v} {c}\n" for v, c in zip(self.values, class_names)))
        if self.nifti:
            atomic_write_text(self.out / "channels.txt", "".join(f"{c}\n" for c in channel_names))

    def _write(self, name: str, image: Tensor, mask: Tensor) -> None:
        """One image (C, S, S) and its mask (K, S, S), each atomically, as PNG or NIfTI."""
        labels = label_map(mask, self.values)
        if self.nifti:
            pixels = image.detach().float().cpu().numpy().transpose(1, 2, 0)
            atomic_write(self.out / "images" / f"{name}.nii.gz", lambda tmp: save_nifti(pixels, tmp))
            atomic_write(self.out / "masks" / f"{name}.nii.gz", lambda tmp: save_nifti(labels, tmp))
        else:
            atomic_write(self.out / "images" / f"{name}.png", lambda tmp: png_image(image).save(tmp, "PNG"))
            atomic_write(self.out / "masks" / f"{name}.png", lambda tmp: Image.fromarray(labels).save(tmp, "PNG"))

    def rows(self) -> list[dict]:
        """The manifest's rows (every candidate of the finished chunks)."""
        if not (self.out / MANIFEST).is_file():
            return []
        with open(self.out / MANIFEST, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def write_chunk(self, rows: Sequence[dict], images: Sequence[Tensor | None], masks: Sequence[Tensor]) -> None:
        """The images (None: not kept) and masks of one chunk, then its manifest rows."""
        for row, image, mask in zip(rows, images, masks):
            if image is None:
                continue
            self._write(row["name"], image, mask)
        new = not (self.out / MANIFEST).is_file()
        with open(self.out / MANIFEST, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite(self, rows: Sequence[dict]) -> None:
        """Replace the manifest by ``rows`` (atomically)."""
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.out / MANIFEST, write)

    def write_captions(self, rows: Sequence[dict]) -> Path:
        """``captions.csv`` of the kept images (image stem, caption, subject)."""
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["image", "caption", "subject"])
                writer.writerows([r["name"], r["caption"], r["subject"]] for r in rows if r["kept"] == "yes")

        return atomic_write(self.out / "captions.csv", write)
