"""The output of ``meddtfm augment``: a ready-to-train dataset in the ``folder`` layout (``meddtfm.data.folder``).

::

    OUT/images/<name>.png   the synthetic image: grey (1 channel) or RGB (3 channels), 8-bit
    OUT/masks/<name>.png    the mask it was drawn for: 0/255, or with K > 1 classes a label map 1..K
    OUT/classes.txt         K > 1: one "value name" line per class
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
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from ..files import atomic_write, atomic_write_text
from ..viz import to_rgb

FIELDS = ["name", "chunk", "source", "subject", "caption", "reference", "seed", "variation", "varied", "dice",
          "kept", "model", "mode", "nfe", "solver", "cfg", "checkpoint"]
REQUEST = "augment.json"
MANIFEST = "manifest.csv"


class AugmentFolderError(ValueError):
    """An output folder that holds another request's images."""


def png_image(image: Tensor) -> Image.Image:
    """``(C, S, S)`` in [-1, 1], C = 1 or 3 -> an 8-bit grey or RGB PIL image."""
    if image.shape[0] not in (1, 3):
        raise ValueError(f"the folder layout holds 1- or 3-channel images; this generator draws {image.shape[0]}")
    rgb = to_rgb(image)
    return Image.fromarray(rgb if image.shape[0] == 3 else rgb[:, :, 0])


def png_mask(mask: Tensor) -> Image.Image:
    """One-hot ``(K, S, S)`` -> 0/255 (K = 1) or a label map 0..K (K > 1, later classes on top)."""
    m = mask.detach().cpu().numpy() > 0.5
    if len(m) == 1:
        return Image.fromarray(m[0].astype(np.uint8) * 255)
    labels = np.zeros(m.shape[1:], np.uint8)
    for k in range(len(m)):
        labels[m[k]] = k + 1
    return Image.fromarray(labels)


class AugmentFolder:
    """``OUT`` for one request: which chunks are done, and the writing of a chunk, of captions.csv."""

    def __init__(self, out: Path, request: dict, class_names: Sequence[str]) -> None:
        self.out = Path(out)
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
        if len(class_names) > 1:
            atomic_write_text(self.out / "classes.txt", "".join(f"{k + 1} {c}\n" for k, c in enumerate(class_names)))

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
            name = row["name"]
            atomic_write(self.out / "images" / f"{name}.png", lambda tmp, i=image: png_image(i).save(tmp, "PNG"))
            atomic_write(self.out / "masks" / f"{name}.png", lambda tmp, m=mask: png_mask(m).save(tmp, "PNG"))
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
