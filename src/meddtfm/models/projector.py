"""Projector heads P_i for the distillation loss ``L_DT = sum_i lambda_i ||P_i(B_i) - E_i||^2`` (paper Eq. 8).

The bridge outputs ``B_i`` and the teacher's ``E_i`` differ in channels and size, so a small head
maps each ``B_i`` onto ``E_i``'s shape, as REPA's projector does. Two kinds:

- ``conv`` (default): conv3x3, GroupNorm, SiLU, conv1x1. A spatial head with normalisation over
  space; iREPA (arXiv 2512.10794) found a conv projector transfers spatial structure better than an MLP.
  (iREPA also normalises the teacher's *targets* over space; that is the loss's business, not the head's.)
- ``mlp``: REPA's three-layer MLP with SiLU, applied per position as 1x1 convs.

Resizing: each head projects ``B_i`` on its own grid, *then* resizes to the teacher's grid:
bilinear upsampling when the target is larger (as U-REPA, arXiv 2503.18414, found best for U-Nets),
adaptive average pooling when it is smaller. Pooling first would be cheaper (a default 64 px training
step ran about 20% faster on CPU) but would run the conv head's GroupNorm on the teacher's grid, which for
``E_0`` is 1x1 or 2x2 at 32-64 px: there a norm over space erases or nearly erases the signal.
Only the head's last layer, a 1x1 conv, moves past the pooling: it is affine per position and pooling
averages positions, so the two commute exactly; on the pooled grid it costs 16x less at 64 px (a
default training step there: 1.29 -> 1.23 s on one CPU thread).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from meddtfm.models.cond import group_norm

__all__ = ["Projector", "ProjectorSet", "PROJECTOR_KINDS"]

PROJECTOR_KINDS = ("conv", "mlp")


class Projector(nn.Module):
    """P_i: ``(B, in_ch, h, w) -> (B, out_ch, H, W)`` for a target size ``(H, W)``.

    ``hidden_ch`` defaults to ``max(in_ch, out_ch)``.
    """

    def __init__(self, in_ch: int, out_ch: int, kind: str = "conv", hidden_ch: int | None = None,
                 norm_groups: int = 32) -> None:
        super().__init__()
        if kind not in PROJECTOR_KINDS:
            raise ValueError(f"projector kind {kind!r} is not one of {', '.join(PROJECTOR_KINDS)}")
        hidden = hidden_ch or max(in_ch, out_ch)
        self.in_ch, self.out_ch, self.kind = in_ch, out_ch, kind
        if kind == "conv":
            self.net = nn.Sequential(
                nn.Conv2d(in_ch, hidden, 3, padding=1), group_norm(hidden, norm_groups), nn.SiLU(),
                nn.Conv2d(hidden, out_ch, 1),
            )
        else:
            self.net = nn.Sequential(
                nn.Conv2d(in_ch, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
                nn.Conv2d(hidden, out_ch, 1),
            )

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"projector expects (B, {self.in_ch}, h, w), got {tuple(x.shape)}")
        size = (int(size[0]), int(size[1]))
        *body, last = self.net  # last: the 1x1 conv, moved past the pooling (they commute; module doc)
        for layer in body:
            x = layer(x)
        if size == tuple(x.shape[-2:]):
            return last(x)
        if size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
            return last(F.adaptive_avg_pool2d(x, size))
        return F.interpolate(last(x), size=size, mode="bilinear", align_corners=False)


class ProjectorSet(nn.Module):
    """One ``Projector`` per distilled level: bridge outputs ``[B_0, ..]`` -> ``[P_0(B_0), ..]``, teacher-shaped.

    ``generator_channels`` and ``teacher_channels`` are per level, coarse to fine (for example
    ``VelocityNet.level_channels`` and ``UKAN.feature_channels``). ``levels`` (default: all) are the
    levels that get a head, those with ``lambda_i > 0``: a level without one is neither computed nor
    trained, and its output is None (under DDP every parameter must receive a gradient each step).

    Example:
        >>> import torch
        >>> heads = ProjectorSet([64, 32], [128, 16], levels=[0])
        >>> out = heads([torch.randn(2, 64, 4, 4), torch.randn(2, 32, 8, 8)], [(2, 128, 2, 2), (2, 16, 16, 16)])
        >>> tuple(out[0].shape), out[1]
        ((2, 128, 2, 2), None)
    """

    def __init__(self, generator_channels: Sequence[int], teacher_channels: Sequence[int], kind: str = "conv",
                 hidden_ch: int | None = None, norm_groups: int = 32, levels: Sequence[int] | None = None) -> None:
        super().__init__()
        if len(generator_channels) != len(teacher_channels):
            raise ValueError(f"one teacher width per generator level needed, got {list(generator_channels)} "
                             f"and {list(teacher_channels)}")
        self.num_levels = len(generator_channels)
        levels = range(self.num_levels) if levels is None else levels
        if not levels or not all(0 <= i < self.num_levels for i in levels):
            raise ValueError(f"levels must be a non-empty subset of 0..{self.num_levels - 1}, got {list(levels)}")
        self.heads = nn.ModuleDict({str(i): Projector(generator_channels[i], teacher_channels[i], kind, hidden_ch,
                                                      norm_groups) for i in sorted(set(levels))})

    def forward(self, features: Sequence[Tensor], target_shapes: Sequence[Sequence[int]]) -> list[Tensor | None]:
        """``target_shapes[i]``: ``E_i.shape`` ``(B, C, H, W)`` (channels checked) or just ``(H, W)``."""
        if len(features) != self.num_levels or len(target_shapes) != self.num_levels:
            raise ValueError(f"need {self.num_levels} features and target shapes, got {len(features)} and "
                             f"{len(target_shapes)}")
        out: list[Tensor | None] = []
        for i, (x, shape) in enumerate(zip(features, target_shapes)):
            head = self.heads[str(i)] if str(i) in self.heads else None
            if head is not None and len(shape) == 4 and shape[1] != head.out_ch:
                raise ValueError(f"target has {shape[1]} channels, projector gives {head.out_ch}")
            out.append(None if head is None else head(x, tuple(shape[-2:])))
        return out
