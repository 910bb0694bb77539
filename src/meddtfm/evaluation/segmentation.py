"""A segmenter scored on real images: lesion-present Dice and HD95 per class, as segmentation papers report them.

For each class ``k`` and each image whose mask has ``k``: Dice of the prediction (sigmoid > 0.5) and HD95,
the 95th percentile of the symmetric surface distances in pixels (``regions.region_scores``: an empty
prediction of a present class scores Dice 0 and HD95 the image diagonal). ``dice_present/{k}`` and
``hd95/{k}`` average over those images, ``/mean`` over the classes some mask has. Used to score the
U-Nets of the downstream-utility study on the real test split.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .consistency import predict_kept
from .regions import region_scores


class SegmenterScore:
    """Accumulates per-image, per-class Dice and HD95 of ``segmenter`` on real images over batches."""

    def __init__(self, segmenter: nn.Module, class_names: Sequence[str]) -> None:
        self.segmenter, self.class_names = segmenter, tuple(class_names)
        self._dice: list[Tensor] = []
        self._hd95: list[Tensor] = []

    @torch.no_grad()
    def update(self, images: Tensor, masks: Tensor, has_mask: Tensor | None = None) -> None:
        """``images`` (B, C, H, W) in [-1, 1], one-hot ``masks`` (B, K, H, W); ``has_mask`` False: skipped."""
        kept = predict_kept(self.segmenter, images, masks, has_mask)
        if kept is None:
            return
        dice, hd95 = region_scores(kept[0].cpu(), kept[1].cpu() > 0.5)
        self._dice.append(dice)
        self._hd95.append(hd95)

    def compute(self) -> dict[str, float]:
        """``dice_present/{class}``, ``hd95/{class}``, each ``/mean`` over classes, and ``images`` scored."""
        if not self._dice:
            raise ValueError("no image with a mask was segmented")
        dice, hd95 = torch.cat(self._dice).nanmean(0), torch.cat(self._hd95).nanmean(0)
        out: dict[str, float] = {"images": float(sum(len(d) for d in self._dice))}
        for name, values in (("dice_present", dice), ("hd95", hd95)):
            out.update({f"{name}/{c}": float(v) for c, v in zip(self.class_names, values)})
            out[f"{name}/mean"] = float(values.nanmean())
        return out
