"""The losses of Med-DT-FM (docs/design.md: ``L_total = L_FM + L_DT + alpha L_adv``) and the terms of its GAN
baselines, each a small callable; each baseline's generator objective combines them in ``meddtfm.training.gan``."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class SegmentationLoss:
    """Stage 1: ``dice_weight * Dice + ce_weight * BCE`` on per-class sigmoids of ``logits (B, K, H, W)``.

    The targets ``(B, K, H, W)`` are one-hot over lesion classes without a background channel, so
    classes overlap nowhere and background pixels are all zero: per-class BCE, not a softmax CE
    (MONAI's ``DiceCELoss`` switches to softmax CE as soon as K > 1).
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0) -> None:
        from monai.losses import DiceLoss

        self.dice, self.dice_weight, self.ce_weight = DiceLoss(sigmoid=True), dice_weight, ce_weight

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return self.dice_weight * self.dice(logits.float(), target) + self.ce_weight * bce


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

    ``logits`` is one patch-logit map per scale; losses are averaged over scales. ``rows`` (``(B,)``
    bool), when given, zeroes the other rows' terms; the mean stays over all B rows, so that DDP's
    average of the ranks' losses equals one process's loss on the whole batch whatever rows each rank
    keeps (and a rank that keeps none still passes gradients, zeros, and stays in step).
    """

    def __init__(self, kind: str = "hinge") -> None:
        self.kind = kind

    def discriminator(self, real: list[Tensor], fake: list[Tensor], rows: Tensor | None = None) -> Tensor:
        if self.kind == "hinge":
            terms = [_mean(F.relu(1 - r), rows) + _mean(F.relu(1 + f), rows) for r, f in zip(real, fake)]
        else:
            terms = [0.5 * _mean((r - 1) ** 2, rows) + 0.5 * _mean(f ** 2, rows) for r, f in zip(real, fake)]
        return torch.stack(terms).mean()

    def generator(self, fake: list[Tensor], rows: Tensor | None = None) -> Tensor:
        terms = [-_mean(f, rows) if self.kind == "hinge" else 0.5 * _mean((f - 1) ** 2, rows) for f in fake]
        return torch.stack(terms).mean()


def _mean(x: Tensor, rows: Tensor | None) -> Tensor:
    """Mean of ``x`` (B, ...), with the rows outside ``rows`` (B,) bool counted as 0 when it is given."""
    if rows is None:
        return x.mean()
    return (x.flatten(1).mean(1) * rows.to(x.dtype)).mean()


def feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's discriminator feature-matching L1, averaged over scales and layers (logits excluded)."""
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1])]
    return torch.stack(terms).mean()


def _layer_weights(weights: float | Sequence[float], count: int) -> list[float]:
    return [float(weights)] * count if isinstance(weights, (int, float)) else list(weights)


def discriminator_feature_loss(real: list[list[Tensor]], fake: list[list[Tensor]],
                               layer_weights: float | Sequence[float] = 1.0) -> Tensor:
    """L1 between a discriminator's hidden features of real and generated images, weighted per layer.

    ``real`` / ``fake``: per scale, the feature maps with the logits last (``MultiScalePatchGAN``).
    ``L = mean_s sum_i w_i mean|D_s,i(y) - D_s,i(G(m))|`` over the hidden layers i (logits excluded);
    the real features are targets (detached). MedGAN's perceptual loss ``sum_i lambda_pi P_i`` with
    ``P_i = ||D_i(y) - D_i(G(x))||_1 / (h_i w_i d_i)`` (MedGAN, Armanious et al. 2020), and pix2pixHD's
    feature matching with ``w_i = 4 / (n_layers_D + 1)`` (its ``1 / N_D`` is the mean over scales).
    """
    per_scale = []
    for rs, fs in zip(real, fake):
        w = _layer_weights(layer_weights, len(rs) - 1)
        per_scale.append(sum(wi * F.l1_loss(f.float(), r.detach().float()) for wi, r, f in zip(w, rs[:-1], fs[:-1])))
    return torch.stack(per_scale).mean()


def gram_matrix(features: Tensor) -> Tensor:
    """``Gr = F F^T / (h w d)`` of ``features (B, d, h, w)``: ``(B, d, d)`` channel correlations."""
    b, d, h, w = features.shape
    flat = features.float().reshape(b, d, h * w)
    return flat @ flat.transpose(1, 2) / (h * w * d)


def style_loss(real: list[list[Tensor]], fake: list[list[Tensor]],
               layer_weights: float | Sequence[float] = 1.0) -> Tensor:
    """Gram-matrix style loss on hidden feature maps (logits excluded), as in MedGAN (there on VGG-19 features):
    ``L_style = mean_s sum_j lambda_sj ||Gr_j(y) - Gr_j(G(m))||_F^2 / (4 d_j^2)``, averaged over the batch.

    It compares feature statistics, not positions: it is blind to where a texture is.
    """
    per_scale = []
    for rs, fs in zip(real, fake):
        w = _layer_weights(layer_weights, len(rs) - 1)
        terms = [wi * ((gram_matrix(f) - gram_matrix(r.detach())) ** 2).sum((1, 2)).mean() / (4 * f.shape[1] ** 2)
                 for wi, r, f in zip(w, rs[:-1], fs[:-1])]
        per_scale.append(sum(terms))
    return torch.stack(per_scale).mean()
