"""The linear (rectified / OT-displacement) probability path of flow matching.

Time runs from noise to data: ``x0 ~ N(0, I)`` at ``t = 0`` and the image ``x1`` at ``t = 1``.
The conditional path of Lipman et al. (2023, paper ref. [4]) with ``sigma_min = 0``, which is also
rectified flow (Liu et al., 2023), is the straight line

    x_t = (1 - t) x0 + t x1,        dx_t/dt = x1 - x0,

so the flow-matching regression target does not depend on ``t``:
``L_FM = E ||v(x_t, t, C) - (x1 - x0)||^2`` (docs/design.md, "The parts").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

TimeDistribution = Literal["uniform", "logit_normal"]


def expand_time(t: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample times ``t`` (B,) to (B, 1, ..., 1) so they broadcast over ``like`` (B, ...)."""
    if t.dim() != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must have shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class PathSample:
    """One draw from the path for a batch.

    Attributes:
        x0: source (noise) samples, (B, ...).
        x1: target (data) samples, (B, ...).
        t: times, (B,).
        x_t: points on the path ``(1 - t) x0 + t x1``, (B, ...).
        dx_t: conditional target velocity ``x1 - x0``, (B, ...).
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


class LinearPath:
    """Straight path ``x_t = (1 - t) x0 + t x1`` with constant velocity ``x1 - x0``.

    With minibatch-OT pairs (``meddtfm.flow.coupling.ot_coupling``) this is the OT-displacement
    interpolation between the two empirical batches.
    """

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """Points and target velocities for pairs ``(x0, x1)`` (B, ...) at times ``t`` (B,)."""
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
        tb = expand_time(t, x1).to(x1.dtype)
        x_t = (1 - tb) * x0 + tb * x1
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=x1 - x0)


def one_step_estimate(x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """One Euler step from ``t`` to 1: ``x1_hat = x_t + (1 - t) v``.

    Exact for the straight path when ``v = x1 - x0``; with a learned ``v`` it is the denoised guess
    that the adversarial loss judges (docs/design.md, ``L_adv``). Shapes: x_t, v (B, ...); t (B,).
    """
    return x_t + (1 - expand_time(t, x_t).to(x_t.dtype)) * v


def sample_time(
    batch: int,
    kind: TimeDistribution = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Training times, shape (B,).

    ``uniform``: ``t ~ U[0, 1)``. ``logit_normal``: ``t = sigmoid(mean + std * n)``, ``n ~ N(0, 1)``
    (Esser et al., 2024, SD3), which puts more weight on middle times where the velocity is hardest
    to predict; ``mean`` and ``std`` are ignored for ``uniform``. ``generator`` must live on ``device``.
    """
    if kind == "uniform":
        return torch.rand(batch, generator=generator, device=device, dtype=dtype)
    if kind == "logit_normal":
        n = torch.randn(batch, generator=generator, device=device, dtype=dtype)
        return torch.sigmoid(mean + std * n)
    raise ValueError(f"unknown time distribution {kind!r}; expected 'uniform' or 'logit_normal'")
