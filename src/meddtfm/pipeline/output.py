"""What a pipeline call returns: the images as tensors, with PIL and NumPy views."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch import Tensor

from ..viz import overlay, to_rgb


@dataclass
class PipelineOutput:
    """B samples of one call.

    Attributes:
        images: ``(B, C, R, R)`` float32 in [-1, 1], on the CPU.
        masks: the conditions ``(B, K, R, R)`` one-hot, or None (no mask).
        references: reference mode's ``(B, C, R, R)`` in [-1, 1], else None.
        seeds: the seed of each sample's noise.
        nfe: velocity evaluations used (0 for a one-pass GAN).
        channel_names, class_names: the model's image channels (C) and mask classes (K).
    """

    images: Tensor
    masks: Tensor | None
    references: Tensor | None
    seeds: list[int]
    nfe: int
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def numpy(self) -> np.ndarray:
        """The images as a float32 array ``(B, C, R, R)`` in [-1, 1]."""
        return self.images.numpy()

    def _channel(self, channel: int | str) -> int:
        if isinstance(channel, str):
            if channel not in self.channel_names:
                raise ValueError(f"no channel {channel!r}; this model's are {', '.join(self.channel_names)}")
            return self.channel_names.index(channel)
        return channel

    def to_pil(self, channel: int | str | None = None) -> list[Image.Image]:
        """One PIL image per sample (``R x R``): RGB for a colour model, else ``channel`` (index or name,
        default the first, e.g. FLAIR) in grey."""
        if channel is None and self.channel_names == ("R", "G", "B"):
            return [Image.fromarray(to_rgb(x)) for x in self.images]
        c = self._channel(channel or 0)
        return [Image.fromarray(to_rgb(x[c:c + 1])[:, :, 0]) for x in self.images]

    def overlays(self) -> list[Image.Image]:
        """Each sample (as ``to_pil``) with its mask's classes blended in their colours (``meddtfm.viz``)."""
        if self.masks is None:
            return [Image.fromarray(to_rgb(x)) for x in self.images]
        return [Image.fromarray(overlay(x, m)) for x, m in zip(self.images, self.masks)]

    def differences(self) -> list[Image.Image]:
        """Reference mode: ``|sample - reference|`` averaged over channels, in grey (255 = a difference of 2)."""
        if self.references is None:
            raise ValueError("no references: differences exist in reference mode only")
        diff = (self.images - self.references).abs().mean(1).mul(127.5).round().clamp(0, 255)
        return [Image.fromarray(d.byte().numpy()) for d in diff]
