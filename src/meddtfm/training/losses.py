"""The losses of Med-DT-FM (docs/design.md: ``L_total = L_FM + L_DT + alpha L_adv``), the switches of its
training recipe (iREPA's target normalisation, the R1 penalty, an image loss on the one-step estimate) and the
terms of its GAN baselines, each a small callable; each baseline's generator objective combines them in
``meddtfm.training.gan``."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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
    ``stop_step`` (> 0) the whole term is off (HASTE-style early stop). ``normalize="spatial"``
    replaces each target ``E_i`` by ``spatial_normalize(E_i)`` (iREPA); the projections are left as
    they are. Returns the weighted total and the unweighted per-level values for logging.
    """

    def __init__(self, weights: list[float], kind: str = "l2", stop_step: int = 0, normalize: str = "none") -> None:
        self.weights, self.kind, self.stop_step, self.normalize = weights, kind, stop_step, normalize

    def active(self, step: int) -> bool:
        return any(w > 0 for w in self.weights) and (self.stop_step <= 0 or step < self.stop_step)

    def __call__(self, projected: list[Tensor | None], teacher: list[Tensor]) -> tuple[Tensor, list[float]]:
        """``projected[i]``: ``P_i(B_i)`` in ``E_i``'s shape, or None at a level with ``lambda_i = 0``."""
        total, levels = teacher[0].new_zeros(()).float(), []
        for w, p, e in zip(self.weights, projected, teacher):
            if w <= 0:
                levels.append(0.0)
                continue
            p, e = p.float(), e.float()
            if self.normalize == "spatial":
                e = spatial_normalize(e)
            d = F.mse_loss(p, e) if self.kind == "l2" else (1 - F.cosine_similarity(p, e, dim=1)).mean()
            total = total + w * d
            levels.append(d.item())
        return total, levels


def spatial_normalize(features: Tensor, eps: float = 1e-6) -> Tensor:
    """iREPA's spatial normalisation (arXiv 2512.10794) of teacher features ``(B, C, H, W)``, same shape.

    Per sample b and channel c, over the N = H W positions s:
    ``z[b, c, s] = (e[b, c, s] - mean_s e[b, c]) / (std_s e[b, c] + eps)`` with the unbiased std and
    ``eps = 1e-6``, as in iREPA's code (its mean-removal factor gamma at 1). Removing each channel's
    mean over the image drops the component every position shares and leaves the contrast between
    positions, the spatial structure iREPA found to matter. Needs N >= 2: on a 1 x 1 map the std is
    undefined (and nothing spatial is left to transfer).
    """
    flat = features.flatten(2)
    centred = flat - flat.mean(2, keepdim=True)
    return (centred / (flat.std(2, keepdim=True) + eps)).view_as(features)


class AdversarialLoss:
    """Paper Eq. 9's ``L_adv`` for multi-scale discriminators: hinge or least-squares (LSGAN).

    ``logits`` is one patch-logit map per scale; losses are averaged over scales. ``weights`` (``(B,)``),
    when given, multiplies each row's term: a bool mask keeps its True rows and zeroes the others, a
    float tensor weighs them (e.g. by their time t). The mean stays over all B rows, so that DDP's
    average of the ranks' losses equals one process's loss on the whole batch whatever rows each rank
    keeps (and a rank that keeps none still passes gradients, zeros, and stays in step).
    """

    def __init__(self, kind: str = "hinge") -> None:
        self.kind = kind

    def discriminator(self, real: list[Tensor], fake: list[Tensor], weights: Tensor | None = None) -> Tensor:
        if self.kind == "hinge":
            terms = [_mean(F.relu(1 - r), weights) + _mean(F.relu(1 + f), weights) for r, f in zip(real, fake)]
        else:
            terms = [0.5 * _mean((r - 1) ** 2, weights) + 0.5 * _mean(f ** 2, weights) for r, f in zip(real, fake)]
        return torch.stack(terms).mean()

    def generator(self, fake: list[Tensor], weights: Tensor | None = None) -> Tensor:
        terms = [-_mean(f, weights) if self.kind == "hinge" else 0.5 * _mean((f - 1) ** 2, weights) for f in fake]
        return torch.stack(terms).mean()


def _mean(x: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of ``x`` (B, ...), each row's mean multiplied by ``weights`` (B,) (bool or float) when given."""
    if weights is None:
        return x.mean()
    return _rows_mean(x.flatten(1).mean(1), weights)


def _rows_mean(per_row: Tensor, weights: Tensor) -> Tensor:
    """``mean_b weights_b per_row_b`` over all B rows (rows outside a bool mask count as 0)."""
    return (per_row * weights.to(per_row.dtype)).mean()


class R1Penalty:
    """R1 gradient penalty (Mescheder et al. 2018, "Which training methods for GANs do actually converge?").

    ``R1 = (gamma / 2) mean_b w_b ||grad_x D(x)_b||^2`` on the real images ``x (B, C, H, W)``, where
    ``D(x)_b`` is the sum of row b's patch logits over all positions and scales (a PatchGAN has one
    logit per patch, not one per image; the sum keeps the penalty a single gradient per image). ``x``
    must require grad and ``logits`` come from it; the gradient is taken with ``create_graph`` so that
    the penalty trains the discriminator in the same backward pass as its loss (one forward per
    micro-batch, as DDP expects). ``weights`` (B,) keeps or weighs rows as in ``AdversarialLoss``.
    The squared norm sums over pixels, so a good gamma depends on the image size (StyleGAN2-ADA scales
    its default with the squared resolution).
    """

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, logits: list[Tensor], real: Tensor, weights: Tensor | None = None) -> Tensor:
        total = torch.stack([x.float().sum() for x in logits]).sum()
        (grad,) = torch.autograd.grad(total, real, create_graph=True)
        per_row = grad.float().square().flatten(1).sum(1)
        return 0.5 * self.gamma * (per_row.mean() if weights is None else _rows_mean(per_row, weights))


def discriminator_loss(disc: Callable, adv: AdversarialLoss, r1: R1Penalty, real: Tensor, fake: Tensor, mask: Tensor,
                       keep: Tensor) -> tuple[Tensor, dict[str, float]]:
    """The mask-conditioned discriminator's loss on ``real`` vs ``fake`` (B, C, H, W) over the ``keep`` rows, plus
    the R1 penalty on those real rows when ``r1.gamma > 0`` (from the same forward pass); and its logged terms."""
    use_r1 = r1.gamma > 0
    real = real.detach().requires_grad_() if use_r1 else real
    real_logits = [out[-1] for out in disc(real, mask)]
    fake_logits = [out[-1] for out in disc(fake, mask)]
    loss = adv.discriminator(real_logits, fake_logits, keep)
    terms = {"loss/adv_d": loss.item()}
    if use_r1:
        penalty = r1(real_logits, real, keep)
        loss = loss + penalty
        terms["loss/r1"] = penalty.item()
    return loss, terms


class OneStepImageLoss:
    """An image-space loss on the one-step estimate ``x1_hat = x_t + (1 - t) v`` against the real ``x1``.

    Per row, with ``delta = x1_hat - x1`` of d = C H W elements:
    ``l1``: ``mean |delta|``; ``pseudo_huber``: ``(sqrt(||delta||_2^2 + c^2) - c) / sqrt(d)`` with
    ``c = 0.00054 sqrt(d)``, the pseudo-Huber metric of improved consistency training (Song and
    Dhariwal 2023, "Improved techniques for training consistency models") divided by sqrt(d):
    like ``l1`` it is then on the scale of a per-pixel error (it tends to the RMS error for errors much
    larger than c), so one weight means the same for both kinds and at any resolution. Only rows with
    ``t >= min_t`` count (near t = 0 the one-step estimate is a blurry mean); the mean is over all B
    rows. Shapes: x1_hat, x1 (B, C, H, W); t (B,).
    """

    def __init__(self, kind: str, min_t: float) -> None:
        self.kind, self.min_t = kind, min_t

    def __call__(self, x1_hat: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        delta = (x1_hat.float() - x1.float()).flatten(1)
        if self.kind == "l1":
            per_row = delta.abs().mean(1)
        else:
            d = delta.shape[1]
            c = 0.00054 * math.sqrt(d)
            per_row = (torch.sqrt(delta.square().sum(1) + c * c) - c) / math.sqrt(d)
        return _rows_mean(per_row, t >= self.min_t)


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
