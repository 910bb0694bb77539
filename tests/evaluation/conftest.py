"""Helpers for the evaluation tests: tiny segmenter checkpoints in pretrain-encoder's format."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from meddtfm.checkpoint import save_weights
from meddtfm.config import DataConfig, EncoderConfig, to_dict
from meddtfm.models.segmenters import build_segmenter


def segmenter_checkpoint(path: Path, channel_names: Sequence[str], class_names: Sequence[str],
                         model: str = "unet", data: DataConfig | dict | None = None) -> Path:
    """A randomly initialised segmenter saved as ``SegmentationTask.export_config`` does, trained on ``data``
    (default ``DataConfig()``; a dict is recorded as it is)."""
    enc = EncoderConfig(model=model, unet_features=[4, 4, 4, 4, 4, 4], widths=[4, 4, 8, 8, 8])
    net = build_segmenter(enc, len(channel_names), len(class_names))
    meta = {"encoder": to_dict(enc), "in_channels": len(channel_names), "num_classes": len(class_names),
            "channel_names": list(channel_names), "class_names": list(class_names),
            "data": data if isinstance(data, dict) else to_dict(data or DataConfig())}
    return save_weights(net.state_dict(), path, meta)
