"""Few-step generators (``meddtfm distill-steps``): their metadata record and their k-step sampler.

A few-step weights file is a Med-DT-FM generator whose metadata carries a ``few_step`` record
(``FewStep``): the method that trained it, the step counts k it was trained for, and the guidance
scale of the teacher that was distilled into it. It is sampled with k uniform steps from ``t0`` to 1,
``tau_i = t0 + i h``, ``h = (1 - t0) / k``:

    x_{tau_{i+1}} = x_{tau_i} + h f(x_{tau_i}, tau_i),

one network pass per step (NFE = k) and no guidance (it is in the weights). ``f`` is the student's
velocity ``v`` (adversarial, reflow: explicit Euler) or its average velocity ``u(x, tau_i, h)`` over the
step (meanflow: MeanFlow's update ``z_r = z_t - (t - r) u``, Eq. 12 of arXiv 2505.13447 in our time
direction, exact when ``u`` is). Time runs from noise (t = 0) to image (t = 1) as in ``flow.path``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..models.cond import Condition
from ..models.generator import VelocityNet
from .solver import integrate

__all__ = ["DurationBound", "FewStep", "FewStepError", "few_step_sample", "student_of"]


class FewStepError(ValueError):
    """A few-step generator asked for what it was not trained for (an NFE, a solver, a guidance scale)."""


@dataclass(frozen=True)
class FewStep:
    """The ``few_step`` metadata of a distilled generator.

    Attributes:
        method: a name in ``meddtfm.config.FEW_STEP_METHODS``.
        steps: the step counts (= NFE) it was trained for.
        cfg: the teacher's guidance scale baked into it.
        base: the base flow's weights file.
        base_images: training images the base flow saw (the distillation's budget is measured against it).
    """

    method: str
    steps: tuple[int, ...]
    cfg: float
    base: str
    base_images: int

    @classmethod
    def from_meta(cls, meta: dict) -> FewStep | None:
        """The record in a weights file's metadata, or None for a flow that was not distilled."""
        record = meta.get("few_step")
        if not record:
            return None
        return cls(record["method"], tuple(record["steps"]), float(record["cfg"]), record["base"],
                   int(record["base_images"]))

    def to_meta(self) -> dict:
        return {**asdict(self), "steps": list(self.steps)}

    def describe(self, path: str | Path) -> str:
        trained = ", ".join(str(k) for k in self.steps)
        return f"{path} is a {self.method} few-step generator trained for NFE {trained}"

    def check_nfe(self, nfe: int, path: str | Path) -> None:
        """``FewStepError`` naming the file and the trained step counts unless ``nfe`` is one of them."""
        if nfe not in self.steps:
            raise FewStepError(f"{self.describe(path)}; NFE {nfe} was not trained: pass --nfe "
                               f"{' or '.join(str(k) for k in self.steps)} (or sample the base flow {self.base})")


class DurationBound:
    """A MeanFlow network read at one duration ``h``: ``u(x, t, h)`` called as a velocity network ``v(x, t, C)``."""

    def __init__(self, net: VelocityNet, h: float) -> None:
        self.net, self.h = net, h

    @property
    def ref_channels(self) -> int:
        return self.net.ref_channels

    def condition(self, *args, **kwargs) -> Condition:
        return self.net.condition(*args, **kwargs)

    def __call__(self, x: Tensor, t: Tensor, cond: Condition, f_ref: Tensor | None = None) -> Tensor:
        return self.net(x, t, cond, f_ref, duration=torch.full_like(t.reshape(-1), self.h))


def student_of(net: VelocityNet, k: int, t0: float = 0.0) -> VelocityNet | DurationBound:
    """What each of the k steps from ``t0`` evaluates: ``net``, or a MeanFlow net bound to ``h = (1 - t0) / k``."""
    bare = getattr(net, "module", net)  # DDP-wrapped in training
    return DurationBound(net, (1 - t0) / k) if bare.cfg.duration_embedding else net


def few_step_sample(net: VelocityNet, x0: Tensor, cond: Condition, k: int, f_ref: Tensor | None = None,
                    t0: float = 0.0) -> Tensor:
    """``x`` at t = 1 after k uniform steps from ``x0`` (B, C, H, W) at ``t0`` (module doc), unguided.

    Gradients flow through every step (adversarial post-training backpropagates through the k passes).
    """
    student = student_of(net, k, t0)
    return integrate(lambda x, t: student(x, t, cond, f_ref), x0, "euler", steps=k, t0=t0).x
