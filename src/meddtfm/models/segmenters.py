"""Segmentation networks by name, and loading them back from ``pretrain-encoder``'s safetensors.

* ``ukan``: our U-KAN, the distillation teacher (paper Eq. 2).
* ``unet``: MONAI's ``BasicUNet``, the independent segmenter that evaluation uses to check that
  synthetic images follow their masks. It is never a teacher: ``load_teacher`` refuses it.
"""
from __future__ import annotations

from pathlib import Path

from monai.networks.nets import BasicUNet
from torch import nn

from ..checkpoint import CheckpointError, rebuild
from ..config import EncoderConfig
from .ukan import UKAN, FrozenTeacher


def build_segmenter(cfg: EncoderConfig, in_channels: int, num_classes: int) -> nn.Module:
    """``(B, in_channels, H, W) -> logits (B, num_classes, H, W)`` network named by ``cfg.model``."""
    if cfg.model == "ukan":
        return UKAN(in_channels, num_classes, widths=cfg.widths, kan_grid_size=cfg.kan_grid_size,
                    kan_spline_order=cfg.kan_spline_order, drop_path=cfg.drop_path)
    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                     features=tuple(cfg.unet_features))


def load_segmenter(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the network saved in ``path`` (safetensors + config metadata) in eval mode."""
    return rebuild(path, _from_config, "segmenter")


def _from_config(meta: dict) -> nn.Module:
    return build_segmenter(EncoderConfig(**meta["encoder"]), meta["in_channels"], meta["num_classes"])


def load_teacher(path: str | Path) -> tuple[FrozenTeacher, dict]:
    """The frozen U-KAN teacher ``EM`` from a ``pretrain-encoder --model ukan`` checkpoint."""
    net, meta = load_segmenter(path)
    if not isinstance(net, UKAN):
        raise CheckpointError(f"{path}: holds a {meta['encoder']['model']!r} segmenter; the teacher must be a U-KAN "
                              "(the MONAI U-Net is reserved for evaluation)")
    return FrozenTeacher(net), meta
