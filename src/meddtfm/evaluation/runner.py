"""One evaluation: the real set once, then each run (a seed, or a folder of synthetic images) against it.

A run is an iterable of batches, dicts with

| key | value |
|---|---|
| ``fake`` | synthetic images ``(B, C, S, S)`` in [-1, 1] |
| ``target``, ``has_target`` | the paired real image (zeros where none) and ``(B,)`` bool |
| ``fake_average``, ``average_of`` (optional) | the pixel mean of K draws for the same conditions, and K |
| ``mask``, ``has_mask`` | the conditioning masks ``(B, K, S, S)`` (zeros where none) and ``(B,)`` bool |

Two sources make them: ``folder_runs`` (files matched by name) and, for a checkpoint, a ``Generate``
callable ``generate(batch, seed) -> images`` applied to dataset batches (``generation.py``).

The metrics are the ``RunMetric`` classes of ``METRICS``, by name; a new one is a class and a ``METRICS.add``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data.common import by_stem, list_images, read_binary_mask, read_label_mask, to_unit_range
from ..data.errors import BadSampleError
from ..data.folder import CHANNELS, read_classes
from ..data.io import read_image
from ..registry import Registry
from ..viz import overlay, save_grid
from .consistency import MaskConsistency
from .distribution import ImageSet, fid_kid, frd
from .inception import FIDInceptionV3
from .metrics import PairedMetrics

DICE_NOTE = ("Dice/IoU: evaluation U-Net, sigmoid > 0.5, mean over images. dice_present/ and iou_present/, the "
             "faithfulness measure: per class over the images whose mask has it, the mean over the classes some mask "
             "has; dice/ and iou/: every image with a mask, a class absent from it scoring 1 if not predicted, else 0. "
             "'real (reference)' = the same segmenter on the real images (the ceiling)")
PAIRED_NOTE = ("SSIM, MS-SSIM, PSNR: over the paired images only (paired/pairs per run); in noise mode an image pairs "
               "with the real image whose own mask conditioned it")


@dataclass
class Setup:
    """What every run shares; the networks are loaded and checked by the caller."""

    metrics: Sequence[str]
    channel_names: Sequence[str]
    class_names: Sequence[str]
    workdir: Path  # scratch folder for FRD's PNGs
    segmenter: nn.Module | None = None
    inception: FIDInceptionV3 | None = None
    frd_version: str = "v1"
    grid_dir: Path | None = None  # where to write one PNG grid per run: target | synthetic, mask overlaid


def average_key(key: str, k: int) -> str:
    """``ssim/mean`` -> ``ssim_avg4/mean``: a paired metric of the average of ``k`` draws."""
    metric, _, channel = key.partition("/")
    return f"{metric}_avg{k}/{channel}"


class RunMetric:
    """One metric over one run: ``update`` with each batch and its synthetic ``images`` (B, C, S, S), then
    ``compute`` against the real set, giving the values and the notes that explain them.

    ``needs``: the ``Setup`` network it cannot run without, and what that network is.
    """

    needs: tuple[str, str] | None = None

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    def update(self, batch: dict, images: Tensor) -> None:
        """Nothing by default: a distribution metric reads the run's ``ImageSet``."""

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        raise NotImplementedError


class PairedScores(RunMetric):
    """SSIM, MS-SSIM, PSNR of each synthetic image with a paired real one, and of the average of K draws."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.paired: PairedMetrics | None = None
        self.averaged: PairedMetrics | None = None
        self.average_of = 0

    def update(self, batch: dict, images: Tensor) -> None:
        if not batch["has_target"].any():
            return
        keep, channels = batch["has_target"].bool(), self.setup.channel_names
        if self.paired is None:
            self.paired = PairedMetrics(channels, images.shape[-1])
        self.paired.update(images[keep], batch["target"][keep].float())
        if "fake_average" in batch:
            if self.averaged is None:
                self.averaged, self.average_of = PairedMetrics(channels, images.shape[-1]), int(batch["average_of"])
            self.averaged.update(batch["fake_average"][keep].float(), batch["target"][keep].float())

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        if self.paired is None:
            raise ValueError(f"run {label}: no synthetic image has a real counterpart for the paired metrics")
        out = self.paired.compute()
        out["paired/pairs"] = self.paired.count
        notes = [*self.paired.notes, PAIRED_NOTE]
        if self.averaged is not None:
            k = self.average_of
            out.update({average_key(key, k): v for key, v in self.averaged.compute().items()})
            notes.append(f"SSIM, MS-SSIM, PSNR of the average of {k} draws (..._avg{k}): the pixel mean of {k} samples "
                         "for each mask; a sampler is scored on one draw, a regressor outputs a conditional mean, and "
                         "pixel metrics favour the mean (Dohmen et al., arXiv 2408.06075)")
        return out, notes


class DiceScores(RunMetric):
    """The evaluation U-Net on the synthetic images against their conditioning masks (``MaskConsistency``)."""

    needs = ("segmenter", "the evaluation segmenter")

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.consistency = MaskConsistency(setup.segmenter, setup.class_names)

    def update(self, batch: dict, images: Tensor) -> None:
        self.consistency.update(images, batch["mask"], batch["has_mask"])

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        return (self.consistency.compute() if self.consistency.count else {}), []


class FRDScore(RunMetric):
    """Frechet radiomics distance of the run's images to the real ones, per channel (their PNGs are then deleted)."""

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        version = self.setup.frd_version
        out = frd(real, fake, version)
        scale = "log of the Frechet distance" if version == "v1" else "the Frechet distance"
        shutil.rmtree(fake.frd_dir, ignore_errors=True)
        return out, [f"FRD {version} (frd-score): {scale} of radiomics features, whole image, per channel"]


class FIDScore(RunMetric):
    """FID and KID of the run's Inception features against the real ones."""

    needs = ("inception", "the FID InceptionV3")

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        out = fid_kid(real, fake)
        notes = [(f"FID/KID: FID InceptionV3 pool features; {real.count} real vs {fake.count} synthetic images "
                  "(FID is biased upwards for small sets: compare at equal sizes only)")]
        if not self.setup.inception.reference_weights:
            notes.append("WARNING: the InceptionV3 weights file is not the published one (sha256 prefix differs): "
                         "FID/KID values are not comparable with published values")
        return out, notes


# A run computes its metrics in this order (values, then notes).
METRICS: Registry[type[RunMetric]] = Registry("metric")
METRICS.add("paired", "SSIM, MS-SSIM and PSNR against the paired real image (and of the average of K draws)",
            PairedScores)
METRICS.add("dice", "Dice and IoU of the evaluation U-Net on each synthetic image against its conditioning mask",
            DiceScores)
METRICS.add("frd", "Frechet radiomics distance to the real set, per channel (frd-score)", FRDScore)
METRICS.add("fid", "FID and KID to the real set on FID-InceptionV3 features", FIDScore)


class Evaluation:
    """``add_real`` every real image, then ``run`` each synthetic set; ``notes`` explain the numbers."""

    def __init__(self, setup: Setup) -> None:
        for name in setup.metrics:
            needs = METRICS[name].needs
            if needs is not None and getattr(setup, needs[0]) is None:
                raise ValueError(f"{name} needs {needs[1]}")
        self.setup = setup
        self.real = self._image_set("real")
        self.ceiling = MaskConsistency(setup.segmenter, setup.class_names) if "dice" in setup.metrics else None
        self.notes: list[str] = [DICE_NOTE] if self.ceiling else []
        self.counts: dict[str, dict[str, int]] = {}  # run -> images: real, fake, pairs

    def _image_set(self, label: str) -> ImageSet:
        s = self.setup
        return ImageSet(s.channel_names, s.inception if "fid" in s.metrics else None,
                        s.workdir / label if "frd" in s.metrics else None)

    def add_real(self, images: Tensor, masks: Tensor | None = None, has_mask: Tensor | None = None) -> None:
        """Real images for the distribution metrics, and (with masks) the segmenter's ceiling."""
        self.real.add(images)
        if self.ceiling is not None and masks is not None:
            self.ceiling.update(images, masks, has_mask)

    def reference(self) -> dict[str, float]:
        """The segmenter on the real images: ``dice/...``, ``iou/...`` (empty without dice)."""
        return self.ceiling.compute() if self.ceiling is not None and self.ceiling.count else {}

    def run(self, batches: Iterable[dict], label: str) -> dict[str, float]:
        """Every requested metric of one synthetic set against the real set, in ``METRICS`` order."""
        s, fake = self.setup, self._image_set(f"fake_{label}")
        metrics = [METRICS[name](s) for name in METRICS if name in s.metrics]
        shown = False
        for batch in batches:
            images = batch["fake"].detach().float().cpu()
            fake.add(images)
            for metric in metrics:
                metric.update(batch, images)
            if s.grid_dir is not None and not shown:
                self._grid(batch, images, label)
                shown = True
        if not fake.count:
            raise ValueError(f"run {label}: no synthetic image")
        out: dict[str, float] = {}
        for metric in metrics:
            values, notes = metric.compute(self.real, fake, label)
            out.update(values)
            self._note(*notes)
        self.counts[label] = {"real": self.real.count, "fake": fake.count, "pairs": int(out.get("paired/pairs", 0))}
        return out

    def _note(self, *notes: str) -> None:
        self.notes.extend(n for n in notes if n not in self.notes)

    def _grid(self, batch: dict, images: Tensor, label: str) -> None:
        rows = [[overlay(t, m), overlay(f, m)] for t, f, m in
                zip(batch["target"][:8], images[:8], batch["mask"][:8].float())]
        save_grid(rows, self.setup.grid_dir / f"samples_{label}.png")


# -- mode A: folders ------------------------------------------------------------------------------
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
