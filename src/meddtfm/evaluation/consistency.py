"""Mask consistency: does the synthetic image show the lesion its conditioning mask asked for?

An independent segmenter, MONAI's ``BasicUNet`` trained on real images only (``meddtfm
pretrain-encoder --model unet``), segments each synthetic image; per class ``k``

    Dice_k = 2 |P_k & M_k| / (|P_k| + |M_k|),    IoU_k = |P_k & M_k| / |P_k | M_k|,

with ``P_k = sigmoid(logit_k) > 0.5`` (as in the segmenter's validation) and ``M_k`` the conditioning
mask, averaged over images. In ``dice/`` and ``iou/`` an image whose mask lacks class ``k`` scores 1 when
``P_k`` is empty too and 0 otherwise (BraTS convention: a lesion painted where none was asked for counts),
so a class absent from most masks scores near 1 if it is seldom painted, however badly it is drawn where
asked for. ``dice_present/`` and ``iou_present/`` average class ``k`` only over the images whose mask has
it: how faithfully the lesions that were asked for were drawn (docs/design.md, "Evaluation"). The same
segmenter on the real images against their own masks gives the ceiling to read the synthetic score against.

The U-KAN teacher is refused: the generator was trained to match its features (L_DT), so it would
flatter the generator (docs/design.md, "Evaluation").
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch
from monai.metrics import DiceMetric, MeanIoU
from torch import Tensor, nn

from ..models.segmenters import load_segmenter
from ..training.split_check import SEGMENTER_KEYS, SplitMismatchError, check_same_split

log = logging.getLogger(__name__)


class SegmenterError(ValueError):
    """A segmenter checkpoint that must not, or cannot, score these images."""


def load_eval_segmenter(path: str | Path, num_channels: int, class_names: Sequence[str],
                        channel_names: Sequence[str] | None = None, resolution: int | None = None,
                        data: Mapping | None = None) -> nn.Module:
    """The evaluation U-Net in ``path`` (eval mode); a U-KAN or a mismatched network is refused.

    ``data``: the evaluated data config (a ``DataConfig`` as a dict); the segmenter must have been trained
    on the same split (``SPLIT_KEYS``: else it may have trained on the evaluated subjects) and at the same
    ``resolution`` (else its Dice is off its training distribution). ``resolution`` alone checks the size
    only. Other channel names only warn: it still runs on what it was trained on, channel for channel.
    """
    net, meta = load_segmenter(path)
    model = meta.get("encoder", {}).get("model")
    if model != "unet":
        raise SegmenterError(
            f"{path} holds a {model!r} segmenter. Only the MONAI U-Net evaluation segmenter may score images: the "
            "U-KAN is the distillation teacher, the generator was trained to match its features, so its Dice would "
            "flatter the generator. Train one with `meddtfm pretrain-encoder --model unet` and pass its "
            "best.safetensors to --segmenter.")
    if meta["in_channels"] != num_channels:
        raise SegmenterError(f"{path} segments {meta['in_channels']}-channel images {meta['channel_names']}, "
                             f"these have {num_channels}")
    if tuple(meta["class_names"]) != tuple(class_names):
        raise SegmenterError(f"{path} predicts classes {meta['class_names']}, the masks have {list(class_names)}")
    if channel_names is not None and tuple(meta["channel_names"]) != tuple(channel_names):
        log.warning("%s was trained on channels %s, the images have %s", path, meta["channel_names"],
                    list(channel_names))
    evaluated = {**(data or {}), **({} if resolution is None else {"resolution": resolution})}
    try:
        check_same_split(meta.get("data", {}), evaluated, f"the evaluation U-Net {path}", "the evaluated data",
                         [k for k in SEGMENTER_KEYS if k in evaluated],
                         hint="Train it with `meddtfm pretrain-encoder --model unet` on the evaluated data's split "
                              "and resolution (the same data.split_seed, val_fraction, test_fraction, resolution)")
    except SplitMismatchError as err:
        raise SegmenterError(str(err)) from err
    return net


def predict_kept(segmenter: nn.Module, images: Tensor, masks: Tensor,
                 has_mask: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """The segmenter's binary prediction ``(B', K, H, W)`` (sigmoid > 0.5, on its device) for the rows of
    ``images`` (B, C, H, W) whose ``has_mask`` is set, and those rows' ``masks``; None when no row is kept."""
    if has_mask is not None:
        keep = has_mask.bool().cpu()
        images, masks = images[keep], masks[keep]
    if not len(images):
        return None
    device = next(segmenter.parameters()).device
    return segmenter(images.float().to(device)).sigmoid() > 0.5, masks


class MaskConsistency:
    """Accumulates per-class Dice and IoU of ``segmenter(images)`` against ``masks`` over batches."""

    def __init__(self, segmenter: nn.Module, class_names: Sequence[str]) -> None:
        self.segmenter, self.class_names = segmenter, tuple(class_names)
        self._dice = DiceMetric(include_background=True, reduction="mean_batch", ignore_empty=False)
        self._iou = MeanIoU(include_background=True, reduction="mean_batch", ignore_empty=False)
        self._present: list[Tensor] = []  # (B, K) bool per batch: class k in the conditioning mask of image b
        self.count = 0

    @torch.no_grad()
    def update(self, images: Tensor, masks: Tensor, has_mask: Tensor | None = None) -> None:
        """``images`` (B, C, H, W) in [-1, 1], one-hot ``masks`` (B, K, H, W); ``has_mask`` False: skipped."""
        kept = predict_kept(self.segmenter, images, masks, has_mask)
        if kept is None:
            return
        pred, masks = kept
        pred, target = pred.float(), (masks.to(pred.device) > 0.5).float()
        self._dice(pred, target)
        self._iou(pred, target)
        self._present.append(target.flatten(2).any(-1).cpu())
        self.count += len(pred)

    def compute(self) -> dict[str, float]:
        """``dice/{class}``, ``iou/{class}``, ``dice_present/{class}``, ``iou_present/{class}`` and each ``/mean``.

        ``dice`` / ``iou``: over every image (an absent class scores 1 or 0, module doc). ``*_present``: over
        the images whose mask has the class; NaN for a class no mask has, and ``/mean`` over the classes
        that some mask has (NaN if none has any).
        """
        if not self.count:
            raise ValueError("no image with a mask was segmented")
        present = torch.cat(self._present)
        out: dict[str, float] = {}
        for name, metric in (("dice", self._dice), ("iou", self._iou)):
            per = metric.aggregate().cpu()
            out.update({f"{name}/{c}": float(v) for c, v in zip(self.class_names, per)})
            out[f"{name}/mean"] = float(per.nanmean())
            per = torch.where(present, metric.get_buffer().cpu(), torch.nan).nanmean(0)  # buffer: (N, K) per image
            out.update({f"{name}_present/{c}": float(v) for c, v in zip(self.class_names, per)})
            out[f"{name}_present/mean"] = float(per.nanmean())
        return out
