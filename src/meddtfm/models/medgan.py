"""MedGAN's generator, CasNet (Armanious et al., "MedGAN: Medical image translation using GANs",
Computerized Medical Imaging and Graphics 79, 2020; arXiv 1806.06397), for mask -> image.

CasNet is a cascade of U-blocks: encoder-decoder U-Nets with skip connections, the output image of
one block being the input of the next, so that later blocks refine what earlier ones drew (the
paper: 6 blocks). A U-block is pix2pix's U-Net: ``depth`` stride-2 4 x 4 convs (LeakyReLU 0.2),
then as many stride-2 4 x 4 transposed convs (ReLU), each decoder level concatenating the encoder
feature of its size; the innermost layer and the outermost encoder layer have no norm. Our
choices, where the paper is silent or does not fit: instance norm (as pix2pixHD and our
discriminator; batch statistics are poor at the batch sizes medical images allow), no dropout
(the baselines are deterministic), a tanh image at the end of every block, and ``depth`` sized
for 64-256 px rather than the paper's 8 at 256 px. The first block reads the mask (and the caption
vector broadcast over H x W, see ``MaskToImage``); the others read the previous block's image only,
as in the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GANConfig, MedGANConfig
from .baseline import Baseline, LossTerm
from .pix2pixhd import MaskToImage, init_weights, norm


class UBlock(nn.Module):
    """U-Net ``(B, in_ch, H, W) -> (B, out_ch, H, W)`` in [-1, 1]; H, W multiples of ``2 ** depth``.

    Encoder widths ``ngf * min(2^i, 8)`` for i < depth (pix2pix: 64 .. 512).
    """

    def __init__(self, in_ch: int, out_ch: int, ngf: int, depth: int) -> None:
        super().__init__()
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = in_ch
        for i, w in enumerate(widths):
            conv = nn.Conv2d(prev, w, 4, stride=2, padding=1, bias=i in (0, depth - 1))
            self.down.append(nn.Sequential(conv, norm(w)) if 0 < i < depth - 1 else conv)
            prev = w
        self.up = nn.ModuleList()
        for i in range(depth - 1, -1, -1):
            cin = widths[i] * (1 if i == depth - 1 else 2)
            if i:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=False),
                                             norm(widths[i - 1])))
            else:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, out_ch, 4, 2, 1), nn.Tanh()))

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, down in enumerate(self.down):
            x = down(x if i == 0 else F.leaky_relu(x, 0.2))
            skips.append(x)
        x = skips.pop()
        for i, up in enumerate(self.up):
            x = up(x if i == 0 else torch.cat([x, skips.pop()], dim=1))
        return x


class CasNet(MaskToImage):
    """MedGAN's generator: ``cfg.num_blocks`` U-blocks in series, mask (+ caption map) -> image."""

    def __init__(self, cfg: MedGANConfig, image_channels: int, mask_classes: int, text: dict | None = None,
                 caption_channels: int = 0) -> None:
        super().__init__(image_channels, mask_classes, text, caption_channels, 2**cfg.depth)
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            UBlock(mask_classes + self.caption_channels if i == 0 else image_channels, image_channels, cfg.ngf,
                   cfg.depth)
            for i in range(cfg.num_blocks)
        )
        self.apply(init_weights)

    def translate(self, mask: Tensor, caption: Tensor | None) -> Tensor:
        x = mask
        if caption is not None:
            x = torch.cat([mask, caption[:, :, None, None].expand(-1, -1, *mask.shape[-2:]).to(mask.dtype)], dim=1)
        for block in self.blocks:
            x = block(x)
        return x


def _losses(gan: GANConfig) -> list[LossTerm]:
    """``L_G = L_adv + lambda_1 L_perceptual + lambda_2 L_style + lambda_l1 ||y - G(m)||_1`` (MedGAN; see
    ``meddtfm.training.gan`` for the substitutions): perceptual and style on the discriminator's features."""
    w = gan.medgan
    return [LossTerm("adv_g", 1.0), LossTerm("perceptual", w.perceptual_weight), LossTerm("style", w.style_weight),
            LossTerm("l1", w.l1_weight)]


MEDGAN = Baseline("MedGAN", lambda gan, c, k, text: CasNet(gan.medgan, c, k, text, gan.caption_channels),
                  lambda gan: 1, _losses)
