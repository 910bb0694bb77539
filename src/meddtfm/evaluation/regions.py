"""The BraTS tumour regions, as BraTS papers report them: Dice and HD95 of the evaluation U-Net per region.

The segmenter predicts the classes NCR, ED and ET (per-class sigmoid > 0.5, as ``consistency``); the
regions are unions of classes, of the prediction and of the conditioning mask alike:

| region | classes | BraTS labels |
|---|---|---|
| WT, whole tumour | NCR + ED + ET | 1, 2, 4 |
| TC, tumour core | NCR + ET | 1, 4 |
| ET, enhancing tumour | ET | 4 |

Per image and region: Dice (``monai.metrics.compute_dice``) and HD95, the 95th percentile of the
symmetric surface distances (``monai.metrics.compute_hausdorff_distance``, percentile 95), in pixels of
the model's resolution (a BraTS slice is 240 mm, so at 64 px a pixel is 3.75 mm). Lesion-present
convention, as ``dice_present`` in ``consistency``: a region counts only on the images whose mask has it.
There an empty prediction scores Dice 0 and, as the BraTS challenge does with its volume's diagonal
(373.13 mm), HD95 the image diagonal ``sqrt(H^2 + W^2)``, the largest distance the image allows.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from torch import Tensor, nn

from .consistency import predict_kept

BRATS_CLASSES = ("NCR", "ED", "ET")
REGIONS = {"wt": ("NCR", "ED", "ET"), "tc": ("NCR", "ET"), "et": ("ET",)}
REGIONS_NOTE = ("BraTS regions (dice_wt, dice_tc, dice_et, hd95_*): WT = NCR+ED+ET, TC = NCR+ET, ET, of the "
                "evaluation U-Net's classes (sigmoid > 0.5) against the mask's; mean over the images whose mask has "
                "the region (/images: how many); HD95 in px at the model's resolution, the image diagonal where the "
                "region is asked for and not predicted")


def has_brats_classes(class_names: Sequence[str]) -> bool:
    """Whether the classes include NCR, ED and ET (BraTS; a WT channel may follow)."""
    return set(BRATS_CLASSES) <= set(class_names)


def region_masks(onehot: Tensor, class_names: Sequence[str]) -> Tensor:
    """``(B, K, H, W)`` binary masks over ``class_names`` -> ``(B, 3, H, W)`` bool: WT, TC, ET."""
    if not has_brats_classes(class_names):
        raise ValueError(f"BraTS regions need the classes {', '.join(BRATS_CLASSES)}; got {', '.join(class_names)}")
    index = {name: i for i, name in enumerate(class_names)}
    binary = onehot > 0.5
    return torch.stack([binary[:, [index[c] for c in classes]].any(1) for classes in REGIONS.values()], 1)


def region_scores(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Dice and HD95 ``(B, 3)`` of ``pred`` vs ``target`` region masks ``(B, 3, H, W)``; NaN where ``target``
    lacks the region; an empty prediction of a present region: Dice 0, HD95 the image diagonal (module doc)."""
    pred, target = pred.bool(), target.bool()
    present, painted = target.flatten(2).any(-1), pred.flatten(2).any(-1)
    dice = compute_dice(pred.float(), target.float(), include_background=True, ignore_empty=False)
    diagonal = math.hypot(*target.shape[-2:])
    hd95 = torch.full(present.shape, diagonal, dtype=torch.float32)
    both = present & painted
    if both.any():
        rows = both.any(1)
        with warnings.catch_warnings():  # MONAI's deprecation notice and its warning about empty regions
            warnings.simplefilter("ignore")
            distances = compute_hausdorff_distance(pred[rows].float(), target[rows].float(), include_background=True,
                                                   percentile=95).float()
        hd95[rows] = torch.where(both[rows], distances.cpu(), hd95[rows])
    nan = torch.tensor(float("nan"))
    return torch.where(present, dice.float().cpu(), nan), torch.where(present, hd95, nan)


class BraTSRegions:
    """Accumulates per-image region Dice and HD95 of ``segmenter(images)`` against the masks over batches."""

    def __init__(self, segmenter: nn.Module, class_names: Sequence[str]) -> None:
        if not has_brats_classes(class_names):
            raise ValueError(f"BraTS regions need the classes {', '.join(BRATS_CLASSES)}; got "
                             f"{', '.join(class_names)}")
        self.segmenter, self.class_names = segmenter, tuple(class_names)
        self._dice: list[Tensor] = []
        self._hd95: list[Tensor] = []
        self.count = 0

    @torch.no_grad()
    def update(self, images: Tensor, masks: Tensor, has_mask: Tensor | None = None) -> None:
        """``images`` (B, C, H, W) in [-1, 1], one-hot ``masks`` (B, K, H, W); ``has_mask`` False: skipped."""
        kept = predict_kept(self.segmenter, images, masks, has_mask)
        if kept is None:
            return
        pred, masks = kept[0].cpu(), kept[1]
        dice, hd95 = region_scores(region_masks(pred, self.class_names), region_masks(masks.cpu(), self.class_names))
        self._dice.append(dice)
        self._hd95.append(hd95)
        self.count += len(pred)

    def compute(self) -> dict[str, float]:
        """``dice_{region}/mean``, ``hd95_{region}/mean`` and ``dice_{region}/images`` for WT, TC, ET (NaN means
        for a region no mask has)."""
        if not self.count:
            raise ValueError("no image with a mask was segmented")
        dice, hd95 = torch.cat(self._dice), torch.cat(self._hd95)
        out: dict[str, float] = {}
        for r, region in enumerate(REGIONS):
            out[f"dice_{region}/mean"] = float(dice[:, r].nanmean())
            out[f"hd95_{region}/mean"] = float(hd95[:, r].nanmean())
            out[f"dice_{region}/images"] = int((~dice[:, r].isnan()).sum())
        return out
