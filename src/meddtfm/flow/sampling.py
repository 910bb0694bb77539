"""Sampling the Med-DT-FM flow (paper §2.3): guidance, noise-based (Eq. 7) and reference-guided (Eq. 6) paths.

Time runs from noise (t = 0) to image (t = 1), as in ``meddtfm.flow.path``.

* **Classifier-free guidance**, compositional over the two conditions as in InstructPix2Pix (Brooks et
  al. 2023; CFG: Ho & Salimans 2022), with the mask ``m`` as the outer and the caption ``y`` as
  the inner condition:

      v = v(x|0,0) + s_m [v(x|m,0) - v(x|0,0)] + s_y [v(x|m,y) - v(x|m,0)]
        = (1 - s_m) v(x|0,0) + (s_m - s_y) v(x|m,0) + s_y v(x|m,y),

  where ``0`` is the learned null condition (``CondEncoder``). Only the terms with a non-zero weight
  are evaluated, stacked along the batch in ONE forward pass: ``s_m = s_y = 1`` is one pass (the
  plain conditional velocity), ``s_m = s_y = s`` is ordinary two-pass CFG. A condition that is absent
  for the whole batch (no mask path / no captions) makes its term vanish, so its scale is ignored.
  The reference features ``f_ref`` are anatomy, not a guided condition: every copy gets them.
* **Per-class guidance** (our addition; the paper guides the mask as a whole): a scale ``s_k`` for lesion
  class k adds ``(s_k - 1) [v(x|m,y) - v(x|m without k,y)]``, the class's own contribution, measured
  against the same mask with channel k emptied (the generator learns such masks from
  ``flow.class_ablation``). ``s_k = 1`` changes nothing, ``s_k > 1`` stresses the class, and ``s_k = 0``
  with ``s_m = s_y = 1`` is exactly the velocity of the mask without class k.
* **Noise-based** (Eq. 7): ``x0 ~ N(0, I)``, each sample from its own seed (``seeded_noise``), then
  ``dx/dt = v`` from 0 to 1.
* **Reference-guided** (Eq. 6): ``f_ref = E_0(I_ref)`` seeds bridge 0 throughout. The start ``x_{t0}`` is
  (a) the ODE inversion of ``I_ref``, integrated backward from 1 to ``t0`` under the reference's own
  condition (unguided, so inverting then regenerating under that condition is exact up to solver
  error), or (b) the partial noising ``(1 - t0) z + t0 I_ref``. Then forward from ``t0`` to 1 under the
  new condition. (c) Optional blending (SDEdit / RePaint style): after every step, pixels outside the
  lesion region are reset to the reference's straight path ``(1 - t) x0_ref + t I_ref`` through the
  start point, ``x0_ref = (x_{t0} - t0 I_ref) / (1 - t0)``, and the result keeps ``I_ref`` there exactly.
  So the blended output says nothing about how much anatomy the model keeps; ``with_unblended`` also
  integrates the same start without blending (``ReferenceResult.unblended``), the output to score it on.

Gradients are not switched off here: call under ``torch.no_grad()``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.generator import VelocityNet
from .solver import SOLVERS, GridKind, Method, SolverResult, integrate, time_grid

__all__ = ["ConditionInputs", "Guidance", "GuidedVelocity", "ReferenceResult", "SolverSpec", "generate", "invert",
           "lesion_region", "reference_guided", "sample_seed", "seeded_noise"]


@dataclass(frozen=True)
class SolverSpec:
    """How to integrate: ``method`` with ``nfe`` velocity evaluations on a ``grid`` (uniform | shifted).

    Fixed-step methods take ``nfe / stages`` steps (euler 1 stage, midpoint and heun 2, rk4 4), so
    ``nfe`` must be a multiple of the stages. ``dopri5`` is adaptive (``atol``, ``rtol``) and reports
    the evaluations it made in ``SolverResult.nfe``; here ``nfe`` only sets the number of intervals
    after which blending resets the outside of the lesion. Its error norm spans the whole batch, so
    a dopri5 sample depends on its batch-mates unless the batch has one sample. With CFG each
    evaluation is one forward pass over the stacked copies.
    """

    method: Method = "heun"
    nfe: int = 8
    grid: GridKind = "uniform"
    shift: float = 3.0
    atol: float = 1e-5
    rtol: float = 1e-5

    def __post_init__(self) -> None:
        stages = SOLVERS[self.method].stages
        if self.nfe < 1 or self.nfe % stages:
            raise ValueError(f"nfe={self.nfe} must be a positive multiple of {self.method}'s {stages} "
                             "evaluations per step")

    def times(self, t_from: float, t_to: float, blend: bool = False) -> Tensor:
        """Grid from ``t_from`` to ``t_to`` (either direction), (n + 1,); dopri5 without blending: the endpoints."""
        solver = SOLVERS[self.method]
        if solver.adaptive:
            n = self.nfe if blend else 1
        else:
            n = self.nfe // solver.stages
        return time_grid(n, self.grid, self.shift, t0=t_from, t1=t_to, dtype=torch.float64)


@dataclass(frozen=True)
class Guidance:
    """CFG scales: ``mask`` (s_m) and ``caption`` (s_y) of the compositional formula in the module doc."""

    mask: float = 1.0
    caption: float = 1.0
    classes: tuple[tuple[int, float], ...] = ()  # (class index k, s_k): per-class guidance (module doc)

    def weights(self, uses_mask: bool, uses_caption: bool) -> dict[str, float]:
        """Weights of the copies ``null`` v(x|0,0), ``mask`` v(x|m,0), ``full`` v(x|m,y) and ``without:k``
        v(x|m without class k, y); they sum to 1."""
        if not (uses_mask or uses_caption):
            return {"full": 1.0}
        s_m, s_y = self.mask, self.caption
        if not uses_caption:  # v(x|m,y) == v(x|m,0): any s_y gives the same field, pick the one that drops a term
            s_y = s_m
        if not uses_mask:  # v(x|m,0) == v(x|0,0)
            s_m = s_y
        weights = {"null": 1 - s_m, "mask": s_m - s_y, "full": s_y}
        for k, scale in self.classes if uses_mask else ():
            weights["full"] += scale - 1
            weights[f"without:{k}"] = weights.get(f"without:{k}", 0.0) - (scale - 1)
        return {k: w for k, w in weights.items() if w != 0}


@dataclass(frozen=True)
class ConditionInputs:
    """Inputs of ``VelocityNet.condition`` for B samples.

    Attributes:
        batch_size: B.
        mask: one-hot ``(B, K, H, W)``, or None (no mask: the null).
        tokens: caption ids ``(B, L)``, or None (no caption: the null).
        drop_mask, drop_caption: ``(B,)`` bool, True where that sample has no mask / caption.
    """

    batch_size: int
    mask: Tensor | None = None
    tokens: Tensor | None = None
    drop_mask: Tensor | None = None
    drop_caption: Tensor | None = None

    def stacked(self, kinds: Sequence[str]) -> dict:
        """Keyword arguments of ``condition`` for the copies ``kinds`` (null | mask | full) stacked along B."""
        b, n = self.batch_size, len(kinds)
        ref = self.mask if self.mask is not None else self.tokens
        device = ref.device if ref is not None else None
        yes = torch.ones(b, dtype=torch.bool, device=device)
        dm = self.drop_mask if self.drop_mask is not None else ~yes
        dc = self.drop_caption if self.drop_caption is not None else ~yes
        flags = {"null": (yes, yes), "mask": (dm, yes), "full": (dm, dc)}
        flags.update({k: (dm, dc) for k in kinds if k.startswith("without:")})
        return {
            "mask": None if self.mask is None else torch.cat([self._mask_of(k) for k in kinds]),
            "tokens": None if self.tokens is None else self.tokens.repeat(n, 1),
            "batch_size": n * b,
            "drop_mask": None if self.mask is None else torch.cat([flags[k][0] for k in kinds]),
            "drop_caption": None if self.tokens is None else torch.cat([flags[k][1] for k in kinds]),
        }

    def _mask_of(self, kind: str) -> Tensor:
        """The mask of the copy ``kind``: ``without:k`` empties class k (``ValueError`` if there is none)."""
        if not kind.startswith("without:"):
            return self.mask
        k = int(kind.split(":")[1])
        if not 0 <= k < self.mask.shape[1]:
            raise ValueError(f"per-class guidance of class {k}: the masks have {self.mask.shape[1]} classes")
        mask = self.mask.clone()
        mask[:, k] = 0
        return mask


class GuidedVelocity:
    """``v(x, t) = sum_k w_k v(x, t | C_k, f_ref)`` (module doc), one forward over the stacked copies.

    The condition is encoded once here and reused at every solver step. ``x`` (B, C, H, W), ``t`` (B,).
    """

    def __init__(self, net: VelocityNet, cond: ConditionInputs, guidance: Guidance = Guidance(),
                 f_ref: Tensor | None = None) -> None:
        weights = guidance.weights(_used(cond.mask, cond.drop_mask), _used(cond.tokens, cond.drop_caption))
        self.net, self.kinds, self.weights = net, list(weights), list(weights.values())
        self.cond = net.condition(**cond.stacked(self.kinds))
        n = len(self.kinds)
        self.f_ref = None if f_ref is None else f_ref.repeat(n, 1, 1, 1)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        n = len(self.kinds)
        v = self.net(x.repeat(n, 1, 1, 1), t.repeat(n), self.cond, self.f_ref)
        if n == 1 and self.weights[0] == 1.0:
            return v
        return sum(w * part for w, part in zip(self.weights, v.chunk(n)))


def _used(inputs: Tensor | None, dropped: Tensor | None) -> bool:
    """Whether a condition is present for at least one sample of the batch."""
    return inputs is not None and not (dropped is not None and bool(dropped.all()))


def sample_seed(seed: int, name: str, k: int = 0) -> int:
    """Seed of the k-th sample of the condition ``name`` in a run seeded ``seed``: 63 bits of a blake2b hash."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{name}/{k}".encode(), digest_size=8).digest(), "little") >> 1


def seeded_noise(seeds: Sequence[int], shape: Sequence[int], device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """``x0 ~ N(0, I)``, ``(B, *shape)``: row i from a CPU generator seeded with ``seeds[i]``.

    A sample's noise depends on its seed only (not on its batch or the device), so outputs do not
    change with the batch size or the order of the conditions.
    """
    rows = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


def lesion_region(mask: Tensor, dilation: int) -> Tensor:
    """Union of the classes of ``mask`` (B, K, H, W), dilated by a disk of radius ``dilation`` px: (B, 1, H, W) bool."""
    if dilation < 0:
        raise ValueError(f"dilation must be >= 0, got {dilation}")
    union = (mask > 0.5).any(1, keepdim=True).float()
    r = torch.arange(-dilation, dilation + 1, device=mask.device, dtype=torch.float32)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= dilation**2 + 1e-6).float()[None, None]
    return F.conv2d(union, disk, padding=dilation) > 0.5


def generate(net: VelocityNet, x0: Tensor, cond: ConditionInputs, spec: SolverSpec, guidance: Guidance = Guidance(),
             f_ref: Tensor | None = None, t0: float = 0.0) -> SolverResult:
    """Integrate ``dx/dt = v`` (guided) from ``x0`` at ``t0`` to 1: Eq. 7 for ``t0 = 0`` and noise ``x0``."""
    velocity = GuidedVelocity(net, cond, guidance, f_ref)
    return integrate(velocity, x0, spec.method, grid=spec.times(t0, 1.0), atol=spec.atol, rtol=spec.rtol)


def invert(net: VelocityNet, image: Tensor, cond: ConditionInputs, spec: SolverSpec, t0: float = 0.0,
           f_ref: Tensor | None = None) -> SolverResult:
    """ODE inversion: integrate the unguided ``v(x|C)`` backward from ``image`` at t = 1 to ``t0``.

    Visits the times that ``generate(..., t0=t0)`` visits forward, so inverting and regenerating
    under the same ``cond`` returns ``image`` up to the solver's error.
    """
    velocity = GuidedVelocity(net, cond, Guidance(), f_ref)
    return integrate(velocity, image, spec.method, grid=spec.times(1.0, t0), atol=spec.atol, rtol=spec.rtol)


@dataclass(frozen=True)
class ReferenceResult(SolverResult):
    """``reference_guided``'s result. ``unblended`` (B, C, H, W): the model's own output, the same start
    integrated under the same condition without blending (``x`` itself without blending; None if not asked)."""

    unblended: Tensor | None = None


def reference_guided(net: VelocityNet, reference: Tensor, cond: ConditionInputs, ref_cond: ConditionInputs,
                     spec: SolverSpec, guidance: Guidance = Guidance(), f_ref: Tensor | None = None, *,
                     t0: float = 0.0, noise: Tensor | None = None, region: Tensor | None = None,
                     with_unblended: bool = False) -> ReferenceResult:
    """Eq. 6: a new lesion (``cond``) into ``reference`` (B, C, H, W), keeping its anatomy.

    Start: ``noise`` given -> ``(1 - t0) noise + t0 reference``; else the inversion of ``reference``
    under ``ref_cond`` to ``t0``. Then ``generate`` under ``cond`` from ``t0``. ``region`` (B, 1, H, W)
    bool (``lesion_region``) turns on blending: outside it the path is reset to the reference's after
    every interval and the output equals ``reference``; ``with_unblended`` then also integrates the start
    without blending into ``unblended`` (its evaluations are not in ``nfe``). ``nfe`` counts the inversion too.
    """
    if not 0.0 <= t0 < 1.0:
        raise ValueError(f"t0 must lie in [0, 1), got {t0}")
    nfe = 0
    if noise is not None:
        start = (1 - t0) * noise + t0 * reference
    else:
        inverted = invert(net, reference, ref_cond, spec, t0, f_ref)
        start, nfe = inverted.x, inverted.nfe
    if region is None:
        out = generate(net, start, cond, spec, guidance, f_ref, t0)
        return ReferenceResult(out.x, nfe + out.nfe, out.times, unblended=out.x if with_unblended else None)
    unblended = generate(net, start, cond, spec, guidance, f_ref, t0).x if with_unblended else None
    x0_ref = (start - t0 * reference) / (1 - t0)  # the reference's straight path passes through the start
    velocity = GuidedVelocity(net, cond, guidance, f_ref)
    times, x = spec.times(t0, 1.0, blend=True), start
    for a, b in zip(times[:-1], times[1:]):
        step = integrate(velocity, x, spec.method, grid=torch.stack([a, b]), atol=spec.atol, rtol=spec.rtol)
        t = b.to(x.dtype)
        x, nfe = torch.where(region, step.x, (1 - t) * x0_ref + t * reference), nfe + step.nfe
    return ReferenceResult(torch.where(region, x, reference), nfe, times, unblended=unblended)
