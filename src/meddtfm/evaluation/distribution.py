"""Distribution metrics between the real and the synthetic image set: FRD, FID and KID.

* FRD (Osuala et al. 2024; Konz, Osuala et al. 2026): Frechet distance between Gaussians fitted to
  normalised radiomics features (PyRadiomics), ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})``;
  the default version v1 reports ``log`` of it (identical sets give ``-inf``). Computed by the
  ``frd-score`` package on grayscale PNGs, one FRD per channel (MRI sequence or R, G, B), whole image.
* FID (Heusel et al. 2017): the same Frechet distance on the 2048-d pool features of the FID
  InceptionV3 (``inception.py``); computed by torchmetrics' ``FrechetInceptionDistance``.
* KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel ``(x.y / d + 1)^3`` on those features,
  mean over 100 random subsets of ``min(1000, n_real, n_fake)`` images (torchmetrics'
  ``KernelInceptionDistance``, subsets drawn from a fixed seed).

Inception inputs are uint8 ``round((x + 1) * 127.5)``: RGB images (channels R, G, B) as they are; any
other image one channel at a time, replicated to 3 channels (FID/KID per MRI sequence, then the mean).
Features are extracted once per image; torchmetrics receives them through an identity extractor.
FID is biased upwards for small sets: compare values only at equal set sizes (``n_real``, ``n_fake``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .inception import FIDInceptionV3

RGB = ("R", "G", "B")
FRD_INSTALL = "pip install frd-score pyradiomics-bhklab   (or: pip install -e '.[eval]')"


class MissingDependencyError(ImportError):
    """A metric whose package is not installed."""


def require_frd():
    """``frd_score.compute_frd``, or ``MissingDependencyError`` naming what to install."""
    try:
        import radiomics  # noqa: F401  (frd-score imports it only when it computes)
        from frd_score import compute_frd
    except ImportError as err:
        raise MissingDependencyError(f"FRD needs the packages frd-score and pyradiomics-bhklab ({err}); install them "
                                     f"with: {FRD_INSTALL}; or leave frd out of --metrics") from err
    return compute_frd


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 ``round((x + 1) * 127.5)``."""
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def inception_views(images: Tensor, channel_names: Sequence[str]) -> dict[str, Tensor]:
    """``(B, C, H, W)`` in [-1, 1] -> ``{view: (B, 3, H, W) uint8}``: ``RGB``, or each channel replicated."""
    pixels = to_uint8(images)
    if tuple(channel_names) == RGB:
        return {"RGB": pixels}
    return {name: pixels[:, c:c + 1].expand(-1, 3, -1, -1) for c, name in enumerate(channel_names)}


class ImageSet:
    """One image set, streamed in batches into what the metrics need.

    ``features[view]``: Inception features (when ``inception`` is given); ``files[channel]``: one
    grayscale PNG per image and channel under ``frd_dir`` (when given), for FRD.
    """

    def __init__(self, channel_names: Sequence[str], inception: FIDInceptionV3 | None = None,
                 frd_dir: Path | None = None) -> None:
        self.channel_names, self.inception, self.frd_dir = tuple(channel_names), inception, frd_dir
        self.features: dict[str, list[Tensor]] = {}
        self.files: dict[str, list[Path]] = {c: [] for c in self.channel_names}
        self.count = 0

    @torch.no_grad()
    def add(self, images: Tensor) -> None:
        """``images`` (B, C, H, W) in [-1, 1]."""
        if images.ndim != 4 or images.shape[1] != len(self.channel_names):
            raise ValueError(f"expected (B, {len(self.channel_names)}, H, W) images, got {tuple(images.shape)}")
        if self.inception is not None:
            device = next(self.inception.parameters()).device
            for view, pixels in inception_views(images, self.channel_names).items():
                self.features.setdefault(view, []).append(self.inception(pixels.to(device)).double().cpu())
        if self.frd_dir is not None:
            pixels = to_uint8(images).cpu().numpy()
            for c, name in enumerate(self.channel_names):
                folder = self.frd_dir / name
                folder.mkdir(parents=True, exist_ok=True)
                for i, plane in enumerate(pixels[:, c], start=self.count):
                    path = folder / f"{i:07d}.png"
                    Image.fromarray(np.ascontiguousarray(plane)).save(path)
                    self.files[name].append(path)
        self.count += images.shape[0]


class _Precomputed(nn.Module):
    """Identity "extractor": torchmetrics gets features that ``ImageSet`` already extracted."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def _with_mean(values: dict[str, float], prefix: str) -> dict[str, float]:
    out = {f"{prefix}/{k}": v for k, v in values.items()}
    out[f"{prefix}/mean"] = float(np.mean(list(values.values())))
    return out


def fid_kid(real: ImageSet, fake: ImageSet, kid_subsets: int = 100, kid_subset_size: int = 1000,
            kid_seed: int = 0) -> dict[str, float]:
    """``fid/{view}``, ``kid/{view}`` and their ``/mean`` over views (needs >= 2 images per set)."""
    if not real.features or not fake.features:
        raise ValueError("FID/KID: both image sets need Inception features (ImageSet(..., inception=net))")
    if min(real.count, fake.count) < 2:
        raise ValueError(f"FID/KID need at least 2 images per set, got {real.count} real and {fake.count} synthetic")
    fid, kid = {}, {}
    size = min(kid_subset_size, real.count, fake.count)
    for view in real.features:
        r, f = torch.cat(real.features[view]), torch.cat(fake.features[view])
        metric = FrechetInceptionDistance(feature=_Precomputed(r.shape[1]))
        metric.update(r, real=True)
        metric.update(f, real=False)
        fid[view] = float(metric.compute())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            kmetric = KernelInceptionDistance(feature=_Precomputed(r.shape[1]), subsets=kid_subsets, subset_size=size)
        kmetric.update(r, real=True)
        kmetric.update(f, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(kid_seed)
            kid[view] = float(kmetric.compute()[0])
    return {**_with_mean(fid, "fid"), **_with_mean(kid, "kid")}


def frd(real: ImageSet, fake: ImageSet, version: str = "v1", num_workers: int | None = None) -> dict[str, float]:
    """``frd/{channel}`` and ``frd/mean``: frd-score's ``compute_frd`` per channel, real set first."""
    compute_frd = require_frd()
    if not real.count or not fake.count or real.frd_dir is None or fake.frd_dir is None:
        raise ValueError("FRD: both image sets need images written for it (ImageSet(..., frd_dir=folder))")
    values = {}
    for name in real.channel_names:
        with _quiet():
            values[name] = float(compute_frd([list(real.files[name]), list(fake.files[name])], frd_version=version,
                                             num_workers=num_workers))
    return _with_mean(values, "frd")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence frd-score's print and its INFO records (root logger, pykwalify) for the duration."""
    loggers = [logging.getLogger(), logging.getLogger("pykwalify")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
