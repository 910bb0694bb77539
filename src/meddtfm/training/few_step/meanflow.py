"""MeanFlow (Geng et al., arXiv 2505.13447) from a trained flow: the average velocity, in our time direction.

Time runs from noise (t = 0) to image (t = 1). The average velocity over ``[t, t + h]`` along the flow's
trajectory ``x_tau`` is

    u(x_t, t, h) = (1 / h) int_t^{t+h} v(x_tau, tau) dtau,        x_{t+h} = x_t + h u(x_t, t, h),

so one network pass jumps a whole step. Differentiating ``h u = int_t^s v dtau`` in ``t`` with the end
``s = t + h`` held fixed gives the MeanFlow identity (the paper's Eq. 6, here ``h = t - r`` with the
direction of time reversed):

    u(x_t, t, h) = v(x_t, t) + h d/dt u(x_t, t, h),   d/dt u = v . grad_x u + d_t u - d_h u,

the total derivative being the Jacobian-vector product of ``u`` with the tangent ``(v, 1, -1)`` of its
inputs ``(x, t, h)`` (``torch.func.jvp``, forward mode, one pass). The loss regresses ``u_theta`` on the
stopped target ``u_tgt = v + h sg(d/dt u_theta)`` with the paper's adaptive weight
``sg(1 / (||delta||^2 + c)^p)``, ``c = 1e-3`` (its Eq. 9 and §4.3).

Our choices: ``v`` is the frozen base flow's guided velocity at ``x_t`` (guidance ``few_step.cfg``),
not the conditional ``x1 - x0`` of the paper: the target then carries the flow's guidance (the paper's
own CFG variant mixes in the model's unconditional velocity, Eq. 13-16) and has far less variance, which
a fine-tune from the flow wants. ``x_t = (1 - t) x0 + t x1`` with real ``x1``; ``t <= s`` are two sorted
draws of ``few_step.time_sampling``, and a fraction ``1 - few_step.meanflow_ratio`` of rows has ``h = 0``
(``u_tgt = v``: the flow itself, MeanFlow's ``r = t`` rows). The student starts as the flow: its duration
embedding is zero (``VelocityNet``), so ``u(x, t, h) = v(x, t)`` for every h before training. Attention
runs on the math kernel, the one with forward-mode derivatives on every device. Tried on one process only:
under DDP the JVP runs through the wrapper's forward, which has not been checked.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from ...config import Config
from ...data.base import MedicalDataset
from ...flow import sample_time
from ...flow.sampling import GuidedVelocity
from ..distributed import DistEnv
from ..loop import Nets, Phase
from .base import BaseFlow, FewStepTask

ADAPTIVE_C = 1e-3  # c of the adaptive weight (MeanFlow §4.3)


def mean_flow_jvp(u_fn: Callable[[Tensor, Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor, h: Tensor,
                  v: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, du/dt)`` of ``u_fn(x, t, h)`` at ``(x_t, t, h)``: the JVP with tangent ``(v, 1, -1)`` (module doc), one
    forward-mode pass. ``u`` keeps its graph to the parameters; x_t, v (B, C, H, W); t, h (B,)."""
    with sdpa_kernel(SDPBackend.MATH):
        return jvp(u_fn, (x_t, t, h), (v, torch.ones_like(t), -torch.ones_like(h)))


def mean_flow_target(v: Tensor, h: Tensor, dudt: Tensor) -> Tensor:
    """``u_tgt = v + h du/dt`` (module doc): v, dudt (B, C, H, W); h (B,). No gradient."""
    return (v + h.view(-1, 1, 1, 1).to(v.dtype) * dudt).detach()


def adaptive_l2(u: Tensor, target: Tensor, p: float) -> Tensor:
    """``mean_b sg(w_b) ||u_b - target_b||^2`` with ``w_b = 1 / (||delta_b||^2 + c)^p`` (per-element means)."""
    per_row = (u.float() - target.float()).square().flatten(1).mean(1)
    return (per_row / (per_row.detach() + ADAPTIVE_C) ** p).mean()


class MeanFlowTask(FewStepTask):
    """``generator`` with a duration input, trained by the MeanFlow identity (module doc)."""

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, base: BaseFlow) -> None:
        super().__init__(cfg, dataset, env, base, duration=True)

    def phases(self) -> list[Phase]:
        return [Phase("generator", ["generator"], self.generator_loss)]

    def times(self, b: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(t, h)`` (B,) each: t the earlier of two draws, h the gap to the later one or 0 (module doc)."""
        fs, device = self.cfg.few_step, g.device
        pair = torch.stack([sample_time(b, fs.time_sampling, generator=g, device=device) for _ in range(2)])
        t, s = pair.min(0).values, pair.max(0).values
        apart = torch.rand(b, generator=g, device=device) < fs.meanflow_ratio
        return t, torch.where(apart, s - t, torch.zeros_like(t))

    def generator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        x1 = batch["image"]
        g = self.step_generator(step, x1.device)
        x0 = torch.randn(x1.shape, generator=g, device=x1.device, dtype=x1.dtype)
        t, h = self.times(len(x1), g)
        x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1
        with torch.no_grad():
            v = GuidedVelocity(self.teacher, self.condition_inputs(batch), self.guidance)(x_t, t)
        gen, cond = nets["generator"], self.student_condition(nets, batch)
        u, dudt = mean_flow_jvp(lambda x, tt, hh: gen(x, tt, cond, duration=hh), x_t, t, h, v)
        loss = adaptive_l2(u, mean_flow_target(v, h, dudt), self.cfg.few_step.meanflow_p)
        return loss, {"loss/meanflow": loss.item()}
