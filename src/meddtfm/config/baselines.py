"""The ``gan`` section: the Table 1 baselines pix2pixHD and MedGAN (``meddtfm train --model pix2pixhd|medgan``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry
from .errors import ConfigError, check_choice

# The baselines by name (``meddtfm train --model``, Table 1 rows, Fig. 2): import paths of their
# ``meddtfm.models.baseline.Baseline``, resolved on first use. A new baseline is its generator module
# with its ``Baseline`` plus, here, its config section (a field of ``GANConfig``) and one line.
BASELINES: Registry = Registry("GAN baseline")
BASELINES.add_lazy("pix2pixhd", "pix2pixHD (Wang et al. 2018), multi-scale D with feature matching (config "
                   "gan.pix2pixhd)", "meddtfm.models.pix2pixhd:PIX2PIXHD")
BASELINES.add_lazy("medgan", "MedGAN (Armanious et al. 2020), CasNet G with perceptual and style losses (config "
                   "gan.medgan)", "meddtfm.models.medgan:MEDGAN")


@dataclass
class Pix2PixHDConfig:
    """pix2pixHD (Wang et al. 2018): GlobalGenerator [+ LocalEnhancer], N_D-scale PatchGAN, LSGAN + feature matching.

    Defaults are the paper's, except ``n_downsample_global`` 4 -> 3 (our 64-256 px images, not 2048 x 1024).
    ``ngf`` is the finest width; with ``local_enhancer`` the global generator runs at half size with 2 ngf
    (pix2pixHD trains it with ngf=32). The VGG loss needs ``vgg_weights`` (a local torchvision VGG-19 file).
    """

    ngf: int = 64
    n_downsample_global: int = 3
    n_blocks_global: int = 9
    local_enhancer: bool = False  # pix2pixHD's LocalEnhancer (one), for >= 256 px
    n_blocks_local: int = 3
    num_d: int = 2  # discriminator scales
    feat_weight: float = 10.0  # lambda_feat of the discriminator feature-matching loss
    vgg: bool = False  # VGG-19 perceptual loss (weight lambda_feat, as in pix2pixHD)
    vgg_weights: str | None = None  # torchvision-layout vgg19 state dict (.pth or .safetensors)

    def __post_init__(self) -> None:
        blocks = min(self.n_blocks_global, self.n_blocks_local)
        if min(self.ngf, self.n_downsample_global, self.num_d) < 1 or blocks < 0:
            raise ConfigError("gan.pix2pixhd: ngf, n_downsample_global, num_d must be >= 1 and block counts >= 0")
        if self.vgg and not self.vgg_weights:
            raise ConfigError("gan.pix2pixhd.vgg=true needs gan.pix2pixhd.vgg_weights: a local VGG-19 weights file "
                              "(nothing is downloaded); or leave the VGG loss off")


@dataclass
class MedGANConfig:
    """MedGAN (Armanious et al. 2020): CasNet of U-blocks, 70 x 70 PatchGAN, perceptual + style + L1 losses.

    Loss weights: lambda_1 (perceptual) = 20 and lambda_2 (style) = 1e-4 as in the paper's experiments;
    ``l1_weight`` = 20 is the paper's pixel term (see ``meddtfm.training.gan``). Each U-block halves
    the size ``depth`` times (the paper: 8 at 256 px, down to 1 x 1); widths are ngf * min(2^i, 8).
    """

    num_blocks: int = 6  # U-blocks in the CasNet cascade
    depth: int = 5
    ngf: int = 32
    perceptual_weight: float = 20.0
    style_weight: float = 1e-4
    l1_weight: float = 20.0

    def __post_init__(self) -> None:
        if min(self.num_blocks, self.depth, self.ngf) < 1:
            raise ConfigError("gan.medgan: num_blocks, depth and ngf must be >= 1")


@dataclass
class GANConfig:
    """The Table 1 baselines (``meddtfm train --model pix2pixhd|medgan``) and what they share."""

    pix2pixhd: Pix2PixHDConfig = field(default_factory=Pix2PixHDConfig)
    medgan: MedGANConfig = field(default_factory=MedGANConfig)
    adv_kind: str = "lsgan"  # hinge | lsgan
    ndf: int = 64  # discriminator width
    n_layers_d: int = 3  # PatchGAN layers (3: 70 x 70 receptive field)
    caption_channels: int = 16  # broadcast caption-embedding map added to the mask input; 0: masks only
    ema: bool = True  # sample, validate and export the EMA generator (train.ema_decay)
    val_batches: int = 8  # validation L1 averaged over this many batches

    def __post_init__(self) -> None:
        check_choice("gan.adv_kind", self.adv_kind, ("hinge", "lsgan"))
        if min(self.ndf, self.n_layers_d, self.val_batches) < 1 or self.caption_channels < 0:
            raise ConfigError("gan.ndf, gan.n_layers_d, gan.val_batches must be >= 1, gan.caption_channels >= 0")
