"""Mode A of ``meddtfm evaluate``: folders of synthetic and real images, and masks, matched by file stem."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from ..data.common import by_stem, list_images, read_binary_mask, read_label_mask, to_unit_range
from ..data.errors import BadSampleError
from ..data.folder import CHANNELS, read_classes
from ..data.io import read_image
from .runner import Evaluation


@dataclass
class Folder:
    """Images of one folder by stem, decoded on demand as ``C x H x W`` in [-1, 1]."""

    files: dict[str, Path]

    @classmethod
    def scan(cls, folder: str | Path) -> Folder:
        files = by_stem(list_images(Path(folder)))
        if not files:
            raise BadSampleError(folder, "holds no PNG / JPEG / TIFF image")
        return cls(files)

    def read(self, stem: str) -> Tensor:
        return torch.from_numpy(to_unit_range(read_image(self.files[stem]), self.files[stem]))

    def channel_names(self) -> tuple[str, ...]:
        c = self.read(next(iter(self.files))).shape[0]
        return CHANNELS.get(c, tuple(f"c{i}" for i in range(c)))


class Masks:
    """``--masks DIR``: binary masks (class ``lesion``), or label maps listed by ``DIR/classes.txt``."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.files = by_stem(list_images(folder))
        self.values, self.class_names = (read_classes(folder / "classes.txt") if (folder / "classes.txt").is_file()
                                         else (None, ("lesion",)))

    def read(self, stem: str, size: tuple[int, int]) -> Tensor | None:
        path = self.files.get(stem)
        if path is None:
            return None
        mask = read_binary_mask(path, size) if self.values is None else read_label_mask(path, size, self.values)
        return torch.from_numpy(mask)


def _stack(items: list[Tensor | None], zeros: tuple[int, ...], stems: list[str], what: str) -> tuple[Tensor, Tensor]:
    """Stack optional ``C x H x W`` tensors (zeros of shape ``zeros`` where None) and their presence flags."""
    for t, stem in zip(items, stems):
        if t is not None and tuple(t.shape) != zeros:
            raise BadSampleError(stem, f"{what} has shape {tuple(t.shape)}, expected {zeros}")
    return (torch.stack([torch.zeros(zeros) if t is None else t.float() for t in items]),
            torch.tensor([t is not None for t in items]))


def folder_batches(fake: Folder, real: Folder | None, masks: Masks | None, batch_size: int) -> Iterator[dict]:
    """Batches of ``fake`` in stem order, with the real image and the mask of the same stem where they exist."""
    stems = sorted(fake.files)
    for start in range(0, len(stems), batch_size):
        chunk = stems[start:start + batch_size]
        images = [fake.read(s) for s in chunk]
        if any(i.shape != images[0].shape for i in images):
            raise BadSampleError(fake.files[chunk[0]].parent, "synthetic images differ in size or channels")
        fakes = torch.stack(images)
        size = tuple(fakes.shape[-2:])
        targets = [real.read(s) if real is not None and s in real.files else None for s in chunk]
        target, has_target = _stack(targets, tuple(fakes.shape[1:]), chunk, "real image")
        found = [masks.read(s, size) if masks is not None else None for s in chunk]
        k = len(masks.class_names) if masks is not None else 1
        mask, has_mask = _stack(found, (k, *size), chunk, "mask")
        yield {"fake": fakes, "target": target, "has_target": has_target, "mask": mask, "has_mask": has_mask}


def add_real_folder(evaluation: Evaluation, real: Folder, masks: Masks | None, batch_size: int) -> None:
    """Every image of ``real`` (with its mask, where there is one) into ``evaluation``'s real set."""
    for batch in folder_batches(real, None, masks, batch_size):
        evaluation.add_real(batch["fake"], batch["mask"] if masks is not None else None, batch["has_mask"])
