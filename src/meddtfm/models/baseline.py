"""What a mask-to-image GAN baseline declares: its generator, its discriminator's scales and its loss terms.

A baseline is a ``Baseline`` next to its generator (``PIX2PIXHD`` in ``pix2pixhd.py``, ``MEDGAN`` in
``medgan.py``), named in the catalogue ``meddtfm.config.baselines.BASELINES``. Training
(``meddtfm.training.gan``) gives every baseline the same mask-conditioned PatchGAN and turns its
``LossTerm`` list into the generator objective ``L_G = sum_k weight_k term_k``; the terms are
``meddtfm.training.gan.GENERATOR_TERMS`` by name (``adv_g``, ``feat``, ``perceptual``, ``style``,
``l1``, ``vgg``). So a new baseline built from those terms is one generator module plus its config
section and catalogue line.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import GANConfig

if TYPE_CHECKING:
    from .pix2pixhd import MaskToImage


@dataclass(frozen=True)
class LossTerm:
    """One term of ``L_G``: ``weight * GENERATOR_TERMS[name](**options)``, logged as ``loss/<name>``."""

    name: str
    weight: float
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """A mask-to-image GAN baseline.

    Attributes:
        label: its name in tables and figures (``pix2pixHD``).
        generator: ``(gan config, image channels C, mask classes K, TextEncoder kwargs or None) -> G``.
        scales: the number of discriminator scales its config asks for.
        losses: ``gan config -> [LossTerm]``, the generator objective in the paper's order.
    """

    label: str
    generator: Callable[[GANConfig, int, int, dict | None], MaskToImage]
    scales: Callable[[GANConfig], int]
    losses: Callable[[GANConfig], list[LossTerm]]
