"""Paired metrics: a synthetic image against the real image whose mask conditioned it.

Per channel (MRI sequence or RGB colour) and their mean, each the mean over images:

* SSIM (Wang et al. 2004): ``(2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2))``
  in 11 x 11 Gaussian windows (sigma 1.5), ``c1 = (0.01 L)^2``, ``c2 = (0.03 L)^2``.
* MS-SSIM (Wang et al. 2003): ``prod_j cs_j^{w_j}`` over scales, the last with the full SSIM, weights
  ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)`` for 5 scales. Each scale halves the image and the
  11 px window must still fit, so 64 px allows 3 scales and 128 px 4 (``ms_ssim_scales``); then the
  first weights are used, renormalised to sum 1, and ``notes`` says so: such values are not
  comparable with 5-scale MS-SSIM.
* PSNR: ``10 log10(L^2 / MSE)``; identical images give ``inf`` (kept: the mean is then ``inf``).

Images are mapped from [-1, 1] to [0, 1], ``(x + 1) / 2``, and compared with ``L = data_range = 1``.
SSIM's luminance term assumes intensities in [0, L] (as in Wang et al. 2004): it is not invariant to a
shift, and on [-1, 1] with ``L = 2`` means of opposite sign would even make it negative. PSNR is the same
either way. Computed with MONAI's ``SSIMMetric``, ``MultiScaleSSIMMetric`` and ``PSNRMetric``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from monai.metrics import MultiScaleSSIMMetric, PSNRMetric, SSIMMetric
from monai.metrics.regression import compute_ssim_and_cs
from torch import Tensor

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DATA_RANGE = 1.0  # images mapped from [-1, 1] to [0, 1]
KERNEL = 11


def ms_ssim_scales(size: int, kernel_size: int = KERNEL) -> int:
    """Most scales (<= 5) whose coarsest level, ``size / 2^(s-1)``, still holds the window.

    Also satisfies MONAI's own check, ``size // max(1, s-1)^2 > kernel_size - 1``: 5 scales need
    176 px with an 11 px window, 4 need 99 px, 3 need 44 px.
    """
    for scales in range(len(WANG_WEIGHTS), 0, -1):
        if size >> (scales - 1) >= kernel_size and size // max(1, scales - 1) ** 2 > kernel_size - 1:
            return scales
    return 0


def ms_ssim_weights(scales: int) -> tuple[float, ...]:
    """The first ``scales`` of Wang et al.'s weights, renormalised to sum 1 (all five unchanged)."""
    head = WANG_WEIGHTS[:scales]
    return head if scales == len(WANG_WEIGHTS) else tuple(w / sum(head) for w in head)


class PairedMetrics:
    """Accumulates SSIM, MS-SSIM and PSNR of ``fake`` vs ``real`` (B, C, S, S) in [-1, 1] over batches."""

    def __init__(self, channel_names: Sequence[str], size: int) -> None:
        if size < KERNEL:
            raise ValueError(f"SSIM needs images of at least {KERNEL} px (its Gaussian window), got {size}")
        self.channel_names, self.size = tuple(channel_names), size
        self.scales = ms_ssim_scales(size)
        self.weights = ms_ssim_weights(self.scales)
        self._ssim = SSIMMetric(2, data_range=DATA_RANGE, win_size=KERNEL, reduction="none")
        self._ms_ssim = (MultiScaleSSIMMetric(2, data_range=DATA_RANGE, kernel_size=KERNEL, weights=self.weights,
                                              reduction="none") if self.scales >= 2 else None)
        self._psnr = PSNRMetric(max_val=DATA_RANGE, reduction="none")
        self._sums: dict[str, Tensor] = {}
        self.count = 0

    @property
    def notes(self) -> list[str]:
        """What a reader must know to compare these numbers."""
        weights = ", ".join(f"{w:.4f}" for w in self.weights)
        if self.scales == len(WANG_WEIGHTS):
            return [f"MS-SSIM: standard 5 scales, 11 px Gaussian window, weights ({weights})"]
        if self.scales < 2:
            return [f"MS-SSIM: not computed, {self.size} px leaves fewer than 2 scales for an 11 px window"]
        return [(f"MS-SSIM at {self.size} px: {self.scales} scales, 11 px Gaussian window, weights ({weights}) = the "
                 f"first {self.scales} of Wang et al.'s renormalised; the 5-scale MS-SSIM needs >= 176 px, so these "
                 "values are not comparable with 5-scale MS-SSIM")]

    @torch.no_grad()
    def update(self, fake: Tensor, real: Tensor) -> None:
        if fake.shape != real.shape or fake.ndim != 4 or fake.shape[1] != len(self.channel_names):
            raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} must both be "
                             f"(B, {len(self.channel_names)}, {self.size}, {self.size})")
        if tuple(fake.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"images are {tuple(fake.shape[-2:])}, expected {self.size} x {self.size}")
        for name, x in (("fake", fake), ("real", real)):
            if not bool(torch.isfinite(x).all()) or x.abs().max() > 1 + 1e-3:
                raise ValueError(f"{name} images must be finite and in [-1, 1]")
        fake, real = (fake.float().clamp(-1, 1) + 1) / 2, (real.float().clamp(-1, 1) + 1) / 2
        for c, name in enumerate(self.channel_names):
            x, y = fake[:, c:c + 1], real[:, c:c + 1]
            self._add(f"ssim/{name}", self._ssim(x, y))
            self._add(f"psnr/{name}", self._psnr(x, y))
            if self._ms_ssim is not None:
                self._add(f"ms_ssim/{name}", self._ms_ssim(x, y))
        self.count += fake.shape[0]

    def _add(self, key: str, values: Tensor) -> None:
        total = values.detach().double().sum().cpu()
        self._sums[key] = self._sums.get(key, torch.zeros((), dtype=torch.float64)) + total

    def compute(self) -> dict[str, float]:
        """``{metric}/{channel}`` and ``{metric}/mean`` (over channels); each a mean over images."""
        if not self.count:
            raise ValueError("no image pairs were added")
        out: dict[str, float] = {}
        for metric in ("ssim", "ms_ssim", "psnr"):
            per = [float(self._sums[f"{metric}/{c}"]) / self.count for c in self.channel_names
                   if f"{metric}/{c}" in self._sums]
            if per:
                out.update({f"{metric}/{c}": v for c, v in zip(self.channel_names, per)})
                out[f"{metric}/mean"] = sum(per) / len(per)
        return out


@torch.no_grad()
def masked_ssim(fake: Tensor, real: Tensor, keep: Tensor) -> Tensor:
    """SSIM of ``fake`` vs ``real`` (B, C, H, W) in [-1, 1] averaged over the windows centred where ``keep``.

    ``keep`` (B, 1, H, W) bool, e.g. the outside of a dilated lesion: how much of a reference's anatomy
    an edit preserved. The SSIM map (11 px Gaussian windows, as ``PairedMetrics``) covers the centres
    of the windows that fit, so a 5 px border is left out; channels are averaged. Returns (B,) with NaN
    where no kept centre remains.
    """
    if fake.shape != real.shape or keep.shape != (fake.shape[0], 1, *fake.shape[-2:]):
        raise ValueError(f"fake {tuple(fake.shape)}, real {tuple(real.shape)} and keep {tuple(keep.shape)} do not fit")
    x, y = (fake.float().clamp(-1, 1) + 1) / 2, (real.float().clamp(-1, 1) + 1) / 2
    ssim_map = compute_ssim_and_cs(x, y, 2, [KERNEL] * 2, [1.5] * 2, data_range=DATA_RANGE)[0].mean(1)
    border = KERNEL // 2
    weight = keep[:, 0, border:-border, border:-border].float()
    return (ssim_map * weight).sum((1, 2)) / weight.sum((1, 2))
