"""The losses of Med-DT-FM (DESIGN.md: ``L_total = L_FM + L_DT + alpha L_adv``), each a small callable."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class FlowMatchingLoss:
    """``L_FM = E ||v(x_t, t, C) - (x1 - x0)||^2`` on the linear path (the regression that trains the flow)."""

    def __call__(self, velocity: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(velocity.float(), target.float())


class DistillationLoss:
    """Paper Eq. 8: ``L_DT = sum_i lambda_i ||P_i(B_i) - E_i(x1)||^2`` against the frozen teacher.

    ``kind="l2"``: mean squared error per element; ``"cosine"``: ``1 - cos`` between channel vectors
    at each position (REPA's choice). Levels with ``lambda_i = 0`` are skipped, and after
    ``stop_step`` (> 0) the whole term is off (HASTE-style early stop). Returns the weighted total
    and the unweighted per-level values for logging.
    """

    def __init__(self, weights: list[float], kind: str = "l2", stop_step: int = 0) -> None:
        self.weights, self.kind, self.stop_step = weights, kind, stop_step

    def active(self, step: int) -> bool:
        return any(w > 0 for w in self.weights) and (self.stop_step <= 0 or step < self.stop_step)

    def __call__(self, projected: list[Tensor], teacher: list[Tensor]) -> tuple[Tensor, list[float]]:
        total, levels = projected[0].new_zeros(()).float(), []
        for w, p, e in zip(self.weights, projected, teacher):
            if w <= 0:
                levels.append(0.0)
                continue
            p, e = p.float(), e.float()
            d = F.mse_loss(p, e) if self.kind == "l2" else (1 - F.cosine_similarity(p, e, dim=1)).mean()
            total = total + w * d
            levels.append(d.item())
        return total, levels


class AdversarialLoss:
    """Paper Eq. 9's ``L_adv`` for multi-scale discriminators: hinge or least-squares (LSGAN).

    ``logits`` is one patch-logit map per scale; losses are averaged over scales.
    """

    def __init__(self, kind: str = "hinge") -> None:
        self.kind = kind

    def discriminator(self, real: list[Tensor], fake: list[Tensor]) -> Tensor:
        if self.kind == "hinge":
            terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)]
        else:
            terms = [0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean() for r, f in zip(real, fake)]
        return torch.stack(terms).mean()

    def generator(self, fake: list[Tensor]) -> Tensor:
        terms = [-f.mean() if self.kind == "hinge" else 0.5 * ((f - 1) ** 2).mean() for f in fake]
        return torch.stack(terms).mean()


def feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's discriminator feature-matching L1, averaged over scales and layers (logits excluded)."""
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1])]
    return torch.stack(terms).mean()
