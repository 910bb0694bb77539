"""Mask-conditioned multi-scale PatchGAN (pix2pixHD's discriminator layout, MONAI's PatchDiscriminator per scale)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import PatchDiscriminator
from torch import Tensor, nn


class MultiScalePatchGAN(nn.Module):
    """``num_scales`` PatchGANs on the image (and its mask) at full, 1/2, 1/4, ... resolution.

    Input ``image (B, C, H, W)`` and ``mask (B, K, H, W)`` are concatenated (conditional GAN). Returns,
    per scale, the list of intermediate feature maps with the patch logits last; feature matching
    (pix2pixHD, MedGAN) uses the intermediates, the adversarial loss the logits. Instance norm, as in
    pix2pixHD: batch norm statistics are poor at the small per-GPU batches medical images allow.
    """

    def __init__(self, image_channels: int, mask_channels: int, channels: int = 64, num_layers: int = 3,
                 num_scales: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(
            PatchDiscriminator(spatial_dims=2, channels=channels, in_channels=image_channels + mask_channels,
                               out_channels=1, num_layers_d=num_layers, norm="INSTANCE")
            for _ in range(num_scales)
        )

    def forward(self, image: Tensor, mask: Tensor) -> list[list[Tensor]]:
        x = torch.cat([image, mask.to(image.dtype)], dim=1)
        outputs = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(net(x))
        return outputs
