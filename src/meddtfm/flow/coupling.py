"""Couplings of a noise batch ``x0`` with a data batch ``x1``.

``independent_coupling`` keeps the pairs as drawn, ``q(x0, x1) = q(x0) q(x1)``.
``ot_coupling`` re-pairs them by an exact minibatch optimal-transport plan for the squared
Euclidean cost (Tong et al., 2024; Pooladian et al., 2023), which straightens the learned flow
and so reduces the steps a solver needs. Only ``x0`` is permuted, so data stay matched with
their conditions (masks, captions).
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor


def independent_coupling(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """The pairs as drawn: returns ``(x0, x1)`` unchanged."""
    return x0, x1


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """Cost ``M[i, j] = ||x0_i - x1_j||^2`` of flattened samples, (B, B) in float64 on the inputs' device.

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (memory O(B^2 + B D)) in float64, so the rounding error is far
    below the gaps between costs of distinct samples; negatives from rounding are clamped to 0.
    """
    a = x0.detach().reshape(x0.shape[0], -1).double()
    b = x1.detach().reshape(x1.shape[0], -1).double()
    cost = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return cost.clamp_min_(0.0)


def ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """Permutation ``sigma`` (B,) such that pairing ``x0[sigma[j]]`` with ``x1[j]`` is an exact OT plan.

    Solves ``min_pi <pi, M>`` over plans with uniform marginals ``1/B`` by network simplex
    (``ot.emd``). With equal batch sizes this set of plans is ``1/B`` times the Birkhoff polytope,
    whose vertices are the permutation matrices (Birkhoff-von Neumann), and the simplex method
    returns a vertex; so every column of ``pi`` has a single non-zero entry and
    ``sigma[j] = argmax_i pi[i, j]`` reads the permutation off deterministically.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    n = x0.shape[0]
    cost = squared_distances(x0, x1).cpu().numpy()
    marginal = np.full(n, 1.0 / n)
    plan = ot.emd(marginal, marginal, cost)
    sigma = np.argmax(plan, axis=0)
    if len(np.unique(sigma)) != n:
        raise RuntimeError("ot.emd returned a plan that is not a permutation matrix")
    return torch.from_numpy(sigma).to(device=x0.device, dtype=torch.long)


def ot_coupling(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """Minibatch-OT pairs: returns ``(x0[sigma], x1)`` with ``sigma = ot_permutation(x0, x1)``.

    Shapes (B, ...) in and out; no gradient flows through the choice of ``sigma``.
    """
    return x0[ot_permutation(x0, x1)], x1
