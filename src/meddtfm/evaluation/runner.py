"""One evaluation: the real set once, then each run (a seed, or a folder of synthetic images) against it.

A run is an iterable of batches, dicts with

| key | value |
|---|---|
| ``fake`` | synthetic images ``(B, C, S, S)`` in [-1, 1] |
| ``target``, ``has_target`` | the paired real image (zeros where none) and ``(B,)`` bool |
| ``fake_average``, ``average_of`` (optional) | the pixel mean of K draws for the same conditions, and K |
| ``mask``, ``has_mask`` | the conditioning masks ``(B, K, S, S)`` (zeros where none) and ``(B,)`` bool |

Two sources make them: folders of files matched by name (``folders.folder_batches``) and, for a
checkpoint, a ``Generate`` callable ``generate(batch, seed) -> images`` applied to dataset batches
(``generation.py``).

The metrics are the ``RunMetric`` classes of ``METRICS``, by name; a new one is a class and a ``METRICS.add``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from torch import Tensor, nn

from ..registry import Registry
from ..viz import overlay, save_labelled_grid
from .consistency import MaskConsistency
from .distribution import ImageSet, fid_kid, frd
from .inception import FIDInceptionV3
from .metrics import PairedMetrics
from .regions import BRATS_CLASSES, REGIONS_NOTE, BraTSRegions, has_brats_classes

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

    @staticmethod
    def real_scorer(setup: Setup) -> MaskConsistency | BraTSRegions | None:
        """What scores the real images against their own masks (the ceiling), if this metric has one."""
        return None

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

    @staticmethod
    def real_scorer(setup: Setup) -> MaskConsistency:
        return MaskConsistency(setup.segmenter, setup.class_names)

    def update(self, batch: dict, images: Tensor) -> None:
        self.consistency.update(images, batch["mask"], batch["has_mask"])

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        return (self.consistency.compute() if self.consistency.count else {}), []


class RegionScores(RunMetric):
    """BraTS: Dice and HD95 of the evaluation U-Net on the tumour regions WT, TC, ET (``regions``); for classes
    other than NCR, ED, ET nothing, with a note saying so."""

    needs = ("segmenter", "the evaluation segmenter")

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.regions = self.real_scorer(setup)

    @staticmethod
    def real_scorer(setup: Setup) -> BraTSRegions | None:
        return BraTSRegions(setup.segmenter, setup.class_names) if has_brats_classes(setup.class_names) else None

    def update(self, batch: dict, images: Tensor) -> None:
        if self.regions is not None:
            self.regions.update(images, batch["mask"], batch["has_mask"])

    def compute(self, real: ImageSet, fake: ImageSet, label: str) -> tuple[dict[str, float], list[str]]:
        if self.regions is None:
            return {}, [f"brats_regions: not computed, the classes are {', '.join(self.setup.class_names)}, "
                        f"not BraTS's {', '.join(BRATS_CLASSES)}"]
        return (self.regions.compute() if self.regions.count else {}), [REGIONS_NOTE]


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
METRICS.add("brats_regions", "BraTS: Dice and HD95 of the evaluation U-Net on whole tumour, tumour core and "
            "enhancing tumour (WT, TC, ET); nothing for other classes", RegionScores)
METRICS.add("frd", "Frechet radiomics distance to the real set, per channel (frd-score)", FRDScore)
METRICS.add("fid", "FID and KID to the real set on FID-InceptionV3 features", FIDScore)


def needs_segmenter(metrics: Sequence[str]) -> bool:
    """Whether any of ``metrics`` runs the evaluation U-Net (dice, brats_regions)."""
    return any((METRICS[name].needs or ("",))[0] == "segmenter" for name in metrics)


class Evaluation:
    """``add_real`` every real image, then ``run`` each synthetic set; ``notes`` explain the numbers."""

    def __init__(self, setup: Setup) -> None:
        for name in setup.metrics:
            needs = METRICS[name].needs
            if needs is not None and getattr(setup, needs[0]) is None:
                raise ValueError(f"{name} needs {needs[1]}")
        self.setup = setup
        self.real = self._image_set("real")
        scorers = (METRICS[name].real_scorer(setup) for name in METRICS if name in setup.metrics)
        self.ceilings = [scorer for scorer in scorers if scorer is not None]
        self.notes: list[str] = [DICE_NOTE] if "dice" in setup.metrics else []
        self.counts: dict[str, dict[str, int]] = {}  # run -> images: real, fake, pairs

    def _image_set(self, label: str) -> ImageSet:
        s = self.setup
        return ImageSet(s.channel_names, s.inception if "fid" in s.metrics else None,
                        s.workdir / label if "frd" in s.metrics else None)

    def add_real(self, images: Tensor, masks: Tensor | None = None, has_mask: Tensor | None = None) -> None:
        """Real images for the distribution metrics, and (with masks) the segmenter's ceiling."""
        self.real.add(images)
        if masks is not None:
            for ceiling in self.ceilings:
                ceiling.update(images, masks, has_mask)

    def reference(self) -> dict[str, float]:
        """The segmenter on the real images: ``dice/...``, ``iou/...`` with dice, ``dice_wt/...`` ... with
        brats_regions (empty without either)."""
        return {key: value for ceiling in self.ceilings if ceiling.count for key, value in ceiling.compute().items()}

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
        save_labelled_grid(rows, ["mask over target", "mask over sample"], self.setup.grid_dir / f"samples_{label}.png")
