"""Building blocks of the velocity network: time embedding, conditioned residual block, self-attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cond import group_norm


def small_init(module: nn.Conv2d, scale: float = 1e-5) -> nn.Conv2d:
    """Scale a conv's initial weights by ``scale`` and zero its bias (near-identity residual branch)."""
    with torch.no_grad():
        module.weight.mul_(scale)
        if module.bias is not None:
            module.bias.zero_()
    return module


def time_embedding(t: Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of ``scale * t`` for times ``t`` (B,) in [0, 1] -> (B, dim), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = scale * t.float()[:, None] * freqs[None]
    return F.pad(torch.cat([args.cos(), args.sin()], dim=1), (0, dim % 2))


class ResBlock(nn.Module):
    """GN-SiLU-conv, AdaGN(emb)-SiLU-dropout-conv, plus skip: ``(B, in_ch, h, w) -> (B, out_ch, h, w)``."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch, groups), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2, self.drop = group_norm(out_ch, groups), nn.Dropout(dropout)
        self.conv2 = small_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """``emb``: the activated embedding ``SiLU(emb)``, (B, emb_dim)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(self.drop(F.silu(self.norm2(h) * (1 + scale) + shift)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the ``h * w`` positions, residual: shape preserved."""

    def __init__(self, ch: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, ch // head_dim)
        if ch % self.heads:
            raise ValueError(f"attention: {ch} channels do not split into {self.heads} heads")
        self.norm, self.qkv = group_norm(ch, groups), nn.Conv2d(ch, 3 * ch, 1)
        self.proj = small_init(nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)
