"""Reflow: one round of rectified flow on the teacher's couplings (2-rectified flow, Liu et al. 2023, Eq. 6).

The base flow pairs each noise ``x0`` with its ODE output ``x1_T`` (``teacher.TeacherTargets``, guided
at ``few_step.cfg``); those couplings are deterministic, so the straight line between them crosses no
other and the re-trained flow's trajectories straighten, which is what few Euler steps need. From the
base weights, the usual flow-matching regression on the new couplings:

    x_t = (1 - t) x0 + t x1_T,        L = E ||v(x_t, t, C) - (x1_T - x0)||^2,

``t`` from ``few_step.time_sampling``. Sampled with k Euler steps (``flow.few_step``), unguided.
"""
from __future__ import annotations

from torch import Tensor

from ...config import Config
from ...data.base import MedicalDataset
from ...flow import LinearPath, sample_time
from ..distributed import DistEnv
from ..loop import Nets, Phase
from ..losses import FlowMatchingLoss
from .base import BaseFlow, FewStepTask


class ReflowTask(FewStepTask):
    """``generator`` trained by the velocity loss on (noise, teacher output) couplings, module doc."""

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, base: BaseFlow) -> None:
        super().__init__(cfg, dataset, env, base)
        self.path, self.fm = LinearPath(), FlowMatchingLoss()

    def phases(self) -> list[Phase]:
        return [Phase("generator", ["generator"], self.generator_loss)]

    def generator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        g = self.step_generator(step, batch["image"].device)
        x0, x1_teacher = self.pairs(batch, g)
        t = sample_time(len(x0), self.cfg.few_step.time_sampling, generator=g, device=x0.device)
        ps = self.path.sample(x0, x1_teacher, t)
        v = nets["generator"](ps.x_t, t, self.student_condition(nets, batch))
        loss = self.fm(v, ps.dx_t)
        return loss, {"loss/reflow": loss.item()}
