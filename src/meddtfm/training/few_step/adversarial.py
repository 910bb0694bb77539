"""Adversarial post-training of a flow into a k-step generator (Seaweed-APT, arXiv 2501.08316; Adversarial
Flow Models, arXiv 2511.22475).

Per micro-batch of real images ``x1`` with masks ``m``: draw k from ``few_step.steps`` and, per row, a
noise ``x0`` of its pool with the teacher's output ``x1_T`` for it (``teacher.TeacherTargets``). The
student ``G`` (initialised from the flow) generates ``x_hat = G_k(x0 | C)`` in k Euler steps, gradients
through all of them (``flow.few_step.few_step_sample``). Two phases, as in ``MedDTFMTask``:

* generator: ``L_G = adv_weight * L_adv^G(D(x_hat, m)) + distill_weight * d(x_hat, x1_T)``, the hinge
  ``-E D`` of the mask-conditioned multi-scale PatchGAN plus an L1 or pseudo-Huber distance to the teacher
  (``OneStepImageLoss``'s metrics), which anchors the student to the flow's mode for the same noise
  and keeps the adversarial game from collapsing (APT's regression warm-up, kept as a term);
* discriminator: hinge ``E relu(1 - D(x1, m)) + E relu(1 + D(x_hat, m))`` plus the R1 penalty
  ``(gamma / 2) E ||grad_x D(x1, m)||^2`` on the reals (APT's approximated R1 is this one, exact).

Rows without a mask (caption-only) are left out of both adversarial terms: their real image and the
discriminator's mask input (zeros) would not match. The discriminator starts from scratch.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...config import Config
from ...data.base import MedicalDataset
from ...flow.few_step import few_step_sample
from ...models.discriminator import MultiScalePatchGAN
from ..distributed import DistEnv
from ..loop import Nets, Phase
from ..losses import AdversarialLoss, OneStepImageLoss, R1Penalty, discriminator_loss
from .base import BaseFlow, FewStepTask, _unwrap


class AdversarialTask(FewStepTask):
    """``generator`` (the k-step student) and ``discriminator`` (mask-conditioned PatchGAN), module doc."""

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, base: BaseFlow) -> None:
        super().__init__(cfg, dataset, env, base)
        fs = cfg.few_step
        if fs.r1_gamma > 0 and cfg.train.compile:
            raise ValueError("few_step.r1_gamma > 0 needs a double backward, which torch.compile does not support: "
                             "set train.compile=false or few_step.r1_gamma=0")
        self.nets["discriminator"] = MultiScalePatchGAN(dataset.num_channels, dataset.num_classes, fs.disc_channels,
                                                        fs.disc_layers, fs.disc_scales)
        self.adv, self.r1 = AdversarialLoss("hinge"), R1Penalty(fs.r1_gamma)
        self.distance = OneStepImageLoss(fs.distill_loss, 0.0)
        self._fakes: list[tuple[Tensor, Tensor]] = []  # (x_hat, rows with a mask) per micro-batch, for D

    def phases(self) -> list[Phase]:
        return [Phase("generator", ["generator"], self.generator_loss),
                Phase("discriminator", ["discriminator"], self.discriminator_loss)]

    def generator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        fs = self.cfg.few_step
        g = self.step_generator(step, batch["image"].device)
        k = fs.steps[int(torch.randint(0, len(fs.steps), (1,), generator=g, device=g.device))]
        x0, x1_teacher = self.pairs(batch, g)
        fake = few_step_sample(nets["generator"], x0, self.student_condition(nets, batch), k)
        keep = batch["has_mask"].bool()
        logits = [out[-1] for out in _unwrap(nets["discriminator"])(fake, batch["mask"])]
        l_adv = self.adv.generator(logits, keep)
        l_distill = self.distance(fake, x1_teacher, torch.ones(len(fake), device=fake.device))
        self._fakes.append((fake.detach(), keep))
        loss = fs.adv_weight * l_adv + fs.distill_weight * l_distill
        return loss, {"loss/adv_g": l_adv.item(), "loss/distill": l_distill.item(), "k": float(k)}

    def discriminator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """Hinge on real ``x1`` vs the generator phase's ``x_hat`` over the rows with a mask, plus R1 on the reals."""
        fake, keep = self._fakes.pop(0)
        return discriminator_loss(nets["discriminator"], self.adv, self.r1, batch["image"], fake, batch["mask"], keep)
