"""Cond Enc, the condition encoder ``C = f_theta(caption/mask)`` (paper Eq. 1).

A conv pyramid over the one-hot lesion mask gives a spatial condition ``C_i`` at every generator
level; ``TextEncoder`` gives a global caption vector. Either may be absent (a model may even be built
without one of the two paths), and either may be dropped per sample for classifier-free guidance.

Null condition (our choice, for CFG): an absent or dropped mask is a *learned* vector per level,
broadcast over space; an absent or dropped caption is a learned vector. The null never passes
through the mask pyramid. This matters: an all-zero mask ("no lesion", the true condition of a
healthy image) is a real condition that the pyramid encodes like any other mask, so the
unconditional velocity ``v(x, t, null)`` used by CFG is not the "healthy" velocity, and guidance
extrapolates away from "any image" rather than away from "a healthy image". Encoding "absent" as a
zero mask would conflate the two. Likewise an empty caption ("" -> just [CLS]) is not the null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd

import torch
from torch import Tensor, nn

from meddtfm.models.text import TextEncoder

__all__ = ["Condition", "CondEncoder", "apply_drop", "group_norm"]


def group_norm(channels: int, groups: int = 32, affine: bool = True) -> nn.GroupNorm:
    """GroupNorm with the largest group count dividing both ``groups`` and ``channels``."""
    return nn.GroupNorm(gcd(groups, channels), channels, affine=affine)


@dataclass
class Condition:
    """Encoded condition ``C`` (paper Eq. 1).

    Attributes:
        levels: spatial conditions ``C_i``, coarse to fine, ``(B, c_i, h_i, w_i)``; without a mask
            they are ``(B, c_i, 1, 1)`` null vectors that the generator broadcasts.
        vector: caption embedding or its learned null, ``(B, D)`` (the generator adds time).
    """

    levels: list[Tensor]
    vector: Tensor

    @property
    def batch_size(self) -> int:
        return self.vector.shape[0]


def apply_drop(features: Tensor, null: Tensor, drop: Tensor | None) -> Tensor:
    """Per-sample ``null`` (broadcastable) where ``drop`` (B,) is True, else ``features``."""
    if drop is None:
        return features
    if drop.shape != (features.shape[0],) or drop.dtype != torch.bool:
        got = f"{drop.dtype} {tuple(drop.shape)}"
        raise ValueError(f"drop flags must be bool of shape ({features.shape[0]},), got {got}")
    return torch.where(drop.view(-1, *([1] * (features.ndim - 1))), null.to(features.dtype), features)


class CondEncoder(nn.Module):
    """``f_theta``: mask ``(B, K, H, W)`` and/or tokens ``(B, L)`` -> ``Condition`` (paper Eq. 1).

    Args:
        mask_classes: K, channels of the one-hot mask; 0 builds no mask path (caption-only data).
        level_channels: channels of ``C_i`` per generator level, coarse to fine. The finest level
            has the mask's resolution; each coarser one halves it (stride-2 convs). The pyramid has
            no normalisation (like SPADE's mask path): a norm over space would map an empty mask and
            a spatially uniform one alike, and drop how large a lesion is.
        vector_dim: D, width of the caption vector (and of the text transformer).
        vocab_size: caption vocabulary size; 0 builds no text path (mask-only data).
        text_layers, text_heads, max_caption_len, dropout: the ``TextEncoder``.
    """

    def __init__(
        self,
        mask_classes: int,
        level_channels: Sequence[int],
        vector_dim: int,
        vocab_size: int = 0,
        text_layers: int = 2,
        text_heads: int = 4,
        max_caption_len: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mask_classes < 0 or vocab_size < 0 or not level_channels or min(level_channels) < 1:
            raise ValueError(
                f"need mask_classes, vocab_size >= 0 and positive level channels, got "
                f"{mask_classes}, {vocab_size}, {tuple(level_channels)}"
            )
        self.mask_classes = mask_classes
        self.level_channels = [int(c) for c in level_channels]
        self.vector_dim = vector_dim
        self.pyramid: nn.ModuleList | None = None
        if mask_classes:
            blocks, in_ch = [], mask_classes
            for j, ch in enumerate(reversed(self.level_channels)):  # fine to coarse
                down = nn.Conv2d(in_ch, ch, 3, stride=1 if j == 0 else 2, padding=1)
                blocks.append(nn.Sequential(down, nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU()))
                in_ch = ch
            self.pyramid = nn.ModuleList(blocks)
        self.text = (
            TextEncoder(vocab_size, vector_dim, vector_dim, text_layers, text_heads, max_caption_len, dropout)
            if vocab_size
            else None
        )
        self.null_levels = nn.ParameterList([nn.Parameter(torch.randn(c) * 0.02) for c in self.level_channels])
        self.null_vector = nn.Parameter(torch.randn(vector_dim) * 0.02)

    def _mask_levels(self, mask: Tensor, batch_size: int) -> list[Tensor]:
        assert self.pyramid is not None
        down = 2 ** (len(self.level_channels) - 1)
        if mask.ndim != 4 or mask.shape[:2] != (batch_size, self.mask_classes):
            raise ValueError(f"mask must be (B={batch_size}, K={self.mask_classes}, H, W), got {tuple(mask.shape)}")
        if mask.shape[-1] % down or mask.shape[-2] % down:
            raise ValueError(f"mask H and W must be divisible by {down}, got {tuple(mask.shape[-2:])}")
        x, levels = mask.to(self.null_vector.dtype), []
        for block in self.pyramid:
            x = block(x)
            levels.append(x)
        return levels[::-1]

    def forward(
        self,
        mask: Tensor | None,
        tokens: Tensor | None,
        batch_size: int,
        drop_mask: Tensor | None = None,
        drop_caption: Tensor | None = None,
    ) -> Condition:
        """Encode the condition; absent inputs, and samples flagged in ``drop_*`` (B,) bool, get the nulls."""
        if mask is not None and self.pyramid is None:
            raise ValueError("this CondEncoder was built with mask_classes=0 and takes no mask")
        if tokens is not None and self.text is None:
            raise ValueError("this CondEncoder was built with vocab_size=0 and takes no caption")
        if mask is None:
            levels = [n.view(1, -1, 1, 1).expand(batch_size, -1, 1, 1) for n in self.null_levels]
        else:
            feats = self._mask_levels(mask, batch_size)
            levels = [apply_drop(f, n.view(1, -1, 1, 1), drop_mask) for f, n in zip(feats, self.null_levels)]
        if tokens is None:
            vector = self.null_vector.view(1, -1).expand(batch_size, -1)
        else:
            assert self.text is not None
            if tokens.shape[0] != batch_size:
                raise ValueError(f"tokens must have batch size {batch_size}, got {tuple(tokens.shape)}")
            vector = apply_drop(self.text(tokens), self.null_vector.view(1, -1), drop_caption)
        return Condition(levels=levels, vector=vector)
