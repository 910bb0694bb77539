"""Stage 1: train a segmenter (U-KAN teacher or MONAI U-Net evaluator) on a dataset's masks.

Loss: ``dice_weight * Dice + ce_weight * BCE`` on per-class sigmoids (``SegmentationLoss``): the masks
are one-hot over lesion classes without a background channel. Samples without a mask (caption-only
ISIC images) are left out of the loss. Validation reports per-class Dice and IoU at threshold 0.5.
"""
from __future__ import annotations

from pathlib import Path

import torch
from monai.metrics import DiceMetric, MeanIoU
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..config import Config, to_dict
from ..data.base import MedicalDataset
from ..models.kan import KANLinear
from ..models.segmenters import build_segmenter
from ..viz import overlay, save_labelled_grid
from .distributed import DistEnv
from .loop import Nets, Phase
from .losses import SegmentationLoss


class SegmentationTask:
    """One network, one phase; best checkpoint by mean validation Dice."""

    ema_net = None
    best_metric = ("dice/mean", "max")

    def __init__(self, cfg: Config, dataset: MedicalDataset) -> None:
        self.cfg = cfg
        self.channel_names, self.class_names = dataset.channel_names, dataset.class_names
        segmenter = build_segmenter(cfg.encoder, dataset.num_channels, dataset.num_classes)
        self.nets = nn.ModuleDict({"segmenter": segmenter})
        self.criterion = SegmentationLoss(cfg.encoder.dice_weight, cfg.encoder.ce_weight)
        self._preview: dict | None = None

    def phases(self) -> list[Phase]:
        scales = {KANLinear: self.cfg.encoder.kan_lr_scale}
        return [Phase("segmenter", ["segmenter"], self.loss, module_lr_scales=scales)]

    def loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """Dice + BCE over the samples that have a mask (zero, with a graph, when none has)."""
        logits = nets["segmenter"](batch["image"])
        keep = batch["has_mask"]
        if not keep.any():
            return logits.sum() * 0.0, {"seg/loss": 0.0}
        loss = self.criterion(logits[keep], batch["mask"][keep])
        return loss, {"seg/loss": loss.item()}

    @torch.no_grad()
    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]:
        net = nets["segmenter"].eval()
        dice = DiceMetric(include_background=True, ignore_empty=True)
        iou = MeanIoU(include_background=True, ignore_empty=True)
        for batch in loader:
            keep = batch["has_mask"]
            if not keep.any():
                continue
            image, mask = batch["image"][keep].to(env.device), batch["mask"][keep].to(env.device)
            pred = (net(image).sigmoid() > 0.5).float()
            dice(pred, mask)
            iou(pred, mask)
            if self._preview is None:
                self._preview = {"image": image[:4].cpu(), "mask": mask[:4].cpu()}
        net.train()
        if dice.get_buffer() is None:  # no validation sample has a mask
            return {}
        # (N, K) per-sample scores, NaN where the ground truth of a class is empty; a class empty in every
        # sample stays NaN (MONAI's aggregate would report 0) and is left out of the mean.
        per_dice, per_iou = dice.get_buffer().nanmean(0), iou.get_buffer().nanmean(0)
        out = {f"dice/{c}": float(d) for c, d in zip(self.class_names, per_dice)}
        out.update({f"iou/{c}": float(i) for c, i in zip(self.class_names, per_iou)})
        out["dice/mean"] = float(per_dice.nanmean())
        out["iou/mean"] = float(per_iou.nanmean())
        return out

    @torch.no_grad()
    def snapshot(self, nets: Nets, step: int, out: Path) -> None:
        """``out/samples/step_XXXXXXX.png``: rows of image | ground truth | prediction on validation images."""
        if self._preview is None:
            return
        net = nets["segmenter"].eval()
        device = next(net.parameters()).device
        pred = (net(self._preview["image"].to(device)).sigmoid() > 0.5).float().cpu()
        net.train()
        rows = [[overlay(img, img.new_zeros(mask.shape)), overlay(img, mask), overlay(img, p)]
                for img, mask, p in zip(self._preview["image"], self._preview["mask"], pred)]
        save_labelled_grid(rows, ["image", "ground truth", "prediction"], out / "samples" / f"step_{step:07d}.png")

    def export_config(self) -> dict:
        """What ``load_segmenter`` needs to rebuild the network, plus the data it was trained on."""
        return {"encoder": to_dict(self.cfg.encoder), "in_channels": len(self.channel_names),
                "num_classes": len(self.class_names), "channel_names": list(self.channel_names),
                "class_names": list(self.class_names), "data": to_dict(self.cfg.data), "seed": self.cfg.seed}
