"""B-spline Kolmogorov-Arnold linear layer (the "efficient KAN" form used by U-KAN).

Each edge ``in -> out`` carries a learnable function ``phi(x) = w_b * silu(x) + w_s * spline(x)``,
where ``spline`` is a combination of B-splines of order ``spline_order`` on a uniform grid. Summing
over inputs, the layer is two dense products that are fully vectorised over features::

    y = silu(x) @ W_base^T + B(x).flatten(-2) @ (W_spline * scaler).flatten(-2)^T

Out-of-range inputs: the knot vector extends ``spline_order`` cells past each end of
``grid_range``. The bases sum to 1 inside ``grid_range``, taper smoothly to 0 over the extension,
and are exactly 0 beyond it. There, the spline term (and its gradient) vanishes and the layer
reduces to its base branch ``silu(x) @ W_base^T``, which stays informative. We keep this behaviour
of the U-KAN reference rather than clamping, so that pretrained U-KAN-style weights behave the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KANLinear(nn.Module):
    """Map ``(..., in_features) -> (..., out_features)`` with B-spline KAN edges.

    Args:
        in_features: input size.
        out_features: output size.
        grid_size: number of grid cells inside ``grid_range``.
        spline_order: B-spline order k (3 = cubic); each feature has ``grid_size + k`` bases.
        grid_range: interval where the bases form a partition of unity.
        scale_noise: size of the uniform noise that initialises the spline coefficients.
        scale_base: gain of the base weights (Kaiming-uniform init).
        scale_spline: gain of the spline weights (of the standalone scaler when enabled).
        standalone_scale_spline: learn a per-edge scaler that multiplies the spline coefficients.
        base_activation: activation of the residual base branch.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        scale_noise: float = 0.1,
        scale_base: float = 1.0,
        scale_spline: float = 1.0,
        standalone_scale_spline: bool = True,
        base_activation: Callable[[Tensor], Tensor] = F.silu,
    ) -> None:
        super().__init__()
        if grid_size < 1 or spline_order < 0:
            raise ValueError(f"need grid_size >= 1 and spline_order >= 0, got {grid_size}, {spline_order}")
        low, high = grid_range
        if not high > low:
            raise ValueError(f"grid_range must be increasing, got {grid_range}")
        self.in_features = in_features
        self.out_features = out_features
        self.grid_range = (float(low), float(high))
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.scale_noise = scale_noise
        self.scale_base = scale_base
        self.scale_spline = scale_spline
        self.base_activation = base_activation

        step = (high - low) / grid_size
        knots = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float32) * step + low
        self.register_buffer("grid", knots)  # (grid_size + 2k + 1,), shared by all input features

        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, self.num_bases))
        self.spline_scaler = (
            nn.Parameter(torch.empty(out_features, in_features)) if standalone_scale_spline else None
        )
        self.reset_parameters()

    @property
    def num_bases(self) -> int:
        """Number of B-spline bases per input feature: ``grid_size + spline_order``."""
        return self.grid_size + self.spline_order

    def reset_parameters(self) -> None:
        """Kaiming-uniform base weights; small uniform noise on spline coefficients."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        with torch.no_grad():
            self.base_weight.mul_(self.scale_base)
            nn.init.uniform_(self.spline_weight, -0.5, 0.5)
            self.spline_weight.mul_(self.scale_noise / self.grid_size)
            if self.spline_scaler is None:
                self.spline_weight.mul_(self.scale_spline)
            else:
                nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5))
                self.spline_scaler.mul_(self.scale_spline)

    def b_splines(self, x: Tensor) -> Tensor:
        """B-spline bases by the Cox-de Boor recursion: ``(..., in) -> (..., in, grid_size + k)``.

        On the uniform knots ``g_i = g_0 + i h``, with ``u = (x - g_0) / h`` the recursion reads
        ``B_{i,k} = ((u - i) B_{i,k-1} + (i + k + 1 - u) B_{i+1,k-1}) / k``: no divisions by knot gaps.
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected last dim {self.in_features}, got shape {tuple(x.shape)}")
        grid = self.grid.to(x.dtype)
        u = ((x - grid[0]) / (grid[1] - grid[0])).unsqueeze(-1)
        index = torch.arange(len(grid), dtype=x.dtype, device=x.device)
        bases = ((u >= index[:-1]) & (u < index[1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            left = (u - index[: -(k + 1)]) * bases[..., :-1]
            right = (index[k + 1 :] - u) * bases[..., 1:]
            bases = (left + right) * (1.0 / k)
        return bases

    @property
    def scaled_spline_weight(self) -> Tensor:
        """Effective spline coefficients ``(out, in, grid_size + k)``."""
        if self.spline_scaler is None:
            return self.spline_weight
        return self.spline_weight * self.spline_scaler.unsqueeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in_features) -> (..., out_features)``."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        base = F.linear(self.base_activation(flat), self.base_weight)
        spline = F.linear(
            self.b_splines(flat).flatten(1), self.scaled_spline_weight.reshape(self.out_features, -1)
        )
        return (base + spline).reshape(*lead, self.out_features)

    def regularization_loss(self, l1_weight: float = 1.0, entropy_weight: float = 1.0) -> Tensor:
        """Sparsity prior of the KAN paper on the spline coefficients (an approximation without data).

        L1 of the mean absolute coefficient per edge, plus the entropy of its normalised distribution.
        """
        l1_per_edge = self.spline_weight.abs().mean(-1)
        l1 = l1_per_edge.sum()
        p = l1_per_edge / l1.clamp_min(1e-12)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        return l1_weight * l1 + entropy_weight * entropy

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"grid_size={self.grid_size}, spline_order={self.spline_order}, grid_range={self.grid_range}"
        )
