"""U-KAN segmentation network and its frozen encoder, the paper's EM (Eq. 2).

Architecture after Li et al. 2024, "U-KAN Makes Strong Backbone for Medical Image Segmentation and
Generation" (Seg_UKAN). With ``widths = (c1, c2, c3, c4, c5)``:

- three conv stages (conv-BN-ReLU x2, max-pool): ``c1 @ 1/2, c2 @ 1/4, c3 @ 1/8``;
- two tokenised KAN stages (3x3 stride-2 patch embedding, KAN blocks, LayerNorm):
  ``c4 @ 1/16, c5 @ 1/32`` (the bottleneck);
- a decoder that at each level applies a conv block, upsamples x2 (bilinear) and adds the skip;
  KAN blocks refine the 1/16 and 1/8 levels; a 1x1 conv gives the logits.

A KAN block is ``x + DropPath(KANLayer(LayerNorm(x)))`` on a token grid, where the KAN layer
alternates three ``KANLinear`` with depth-wise 3x3 conv + BN + ReLU on the grid.
Unlike the reference we take any number of input channels, allow several KAN blocks per encoder
token stage, and drop its redundant ReLUs after pooling and upsampling (their inputs are >= 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from torch import Tensor, nn

from meddtfm.models.kan import KANLinear

__all__ = ["UKAN", "FrozenTeacher"]

_STRIDES = (32, 16, 8, 4)


class ConvBlock(nn.Sequential):
    """Two conv3x3-BN-ReLU: ``(B, in_ch, H, W) -> (B, out_ch, H, W)`` via ``mid_ch`` channels."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None) -> None:
        mid_ch = out_ch if mid_ch is None else mid_ch
        super().__init__(
            nn.Conv2d(in_ch, mid_ch, 3, padding=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DWConvBNReLU(nn.Module):
    """Depth-wise 3x3 conv + BN + ReLU on a channels-last token grid ``(B, H, W, C)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn(self.conv(x.permute(0, 3, 1, 2))))
        return y.permute(0, 2, 3, 1)


class KANBlock(nn.Module):
    """``x + DropPath(KANLayer(LayerNorm(x)))`` on tokens ``(B, H, W, dim)``, shape preserved."""

    def __init__(self, dim: int, drop_path: float, kan_kwargs: dict, num_layers: int = 3) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layer = nn.Sequential(
            *(nn.Sequential(KANLinear(dim, dim, **kan_kwargs), DWConvBNReLU(dim)) for _ in range(num_layers))
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.layer(self.norm(x)))


class TokenStage(nn.Module):
    """Optional patch embedding, KAN blocks, LayerNorm: ``(B, in_ch, H, W) -> (B, dim, H', W')``.

    With ``downsample`` a 3x3 stride-2 conv + LayerNorm embeds overlapping patches (``H' = H / 2``);
    otherwise ``in_ch`` must equal ``dim`` and the map is tokenised as is (``H' = H``).
    """

    def __init__(
        self, in_ch: int, dim: int, drop_paths: Sequence[float], kan_kwargs: dict, downsample: bool
    ) -> None:
        super().__init__()
        if not downsample and in_ch != dim:
            raise ValueError(f"a stage without patch embedding keeps its width, got {in_ch} -> {dim}")
        self.embed = nn.Conv2d(in_ch, dim, 3, stride=2, padding=1) if downsample else None
        self.embed_norm = nn.LayerNorm(dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*(KANBlock(dim, p, kan_kwargs) for p in drop_paths))
        self.norm = nn.LayerNorm(dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init by fan-out, per group, as in U-KAN's token path
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.embed is not None:
            x = self.embed(x)
        tokens = self.embed_norm(x.permute(0, 2, 3, 1))
        tokens = self.norm(self.blocks(tokens))
        return tokens.permute(0, 3, 1, 2).contiguous()


class UKAN(nn.Module):
    """U-KAN: ``(B, in_channels, H, W) -> logits (B, num_classes, H, W)``, H and W divisible by 32.

    Args:
        in_channels: input channels (1-4 MRI sequences, 3 for RGB, ...).
        num_classes: output logit channels K.
        widths: ``(c1, c2, c3)`` conv stage widths, then ``(c4, c5)`` token stage dims.
        kan_grid_size, kan_spline_order, kan_grid_range: B-spline grid of every ``KANLinear``.
        depths: KAN blocks in the 1/16 and 1/32 encoder token stages (one per decoder token level).
        drop_path: maximal stochastic-depth rate. Rates rise linearly from 0 over the token blocks in
            the order the data visits them (encoder 1/16, 1/32, decoder 1/16, 1/8); our choice.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 256, 320, 512),
        kan_grid_size: int = 5,
        kan_spline_order: int = 3,
        kan_grid_range: tuple[float, float] = (-1.0, 1.0),
        depths: Sequence[int] = (1, 1),
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"need in_channels, num_classes >= 1, got {in_channels}, {num_classes}")
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"widths must be 5 positive ints (3 conv + 2 token stages), got {widths}")
        if len(depths) != 2 or min(depths) < 1:
            raise ValueError(f"depths must be 2 positive ints, got {depths}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = tuple(int(w) for w in widths)
        c1, c2, c3, c4, c5 = self.widths
        kan = dict(grid_size=kan_grid_size, spline_order=kan_spline_order, grid_range=tuple(kan_grid_range))
        rates = torch.linspace(0.0, drop_path, sum(depths) + 2).tolist()
        enc16, enc32, dec = rates[: depths[0]], rates[depths[0] : -2], rates[-2:]

        self.enc_convs = nn.ModuleList([ConvBlock(in_channels, c1), ConvBlock(c1, c2), ConvBlock(c2, c3)])
        self.enc_tokens = nn.ModuleList(
            [TokenStage(c3, c4, enc16, kan, downsample=True), TokenStage(c4, c5, enc32, kan, downsample=True)]
        )
        self.dec_convs = nn.ModuleList(
            [ConvBlock(ci, co, mid_ch=ci) for ci, co in ((c5, c4), (c4, c3), (c3, c2), (c2, c1), (c1, c1))]
        )
        self.dec_tokens = nn.ModuleList(
            [TokenStage(c4, c4, dec[:1], kan, downsample=False), TokenStage(c3, c3, dec[1:], kan, downsample=False)]
        )
        self.head = nn.Conv2d(c1, num_classes, 1)

    @property
    def feature_channels(self) -> list[int]:
        """Channels of ``encode``'s maps, coarse to fine: ``[c5, c4, c3, c2]``."""
        return list(self.widths[:0:-1])

    @property
    def feature_strides(self) -> list[int]:
        """Downsampling factors of ``encode``'s maps, coarse to fine: ``[32, 16, 8, 4]``."""
        return list(_STRIDES)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UKAN expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h == 0 or w == 0 or h % 32 or w % 32:
            raise ValueError(f"UKAN needs H and W divisible by 32, got {h}x{w}; pad or resize the input")

    def _encoder_features(self, x: Tensor) -> list[Tensor]:
        """All encoder maps, fine to coarse: strides ``[2, 4, 8, 16, 32]``, channels ``c1..c5``."""
        self._check_input(x)
        feats = []
        for conv in self.enc_convs:
            x = F.max_pool2d(conv(x), 2)
            feats.append(x)
        for stage in self.enc_tokens:
            x = stage(x)
            feats.append(x)
        return feats

    def encode(self, x: Tensor) -> list[Tensor]:
        """Teacher features ``[E_0, E_1, E_2, E_3]``, coarse to fine (docs/design.md levels 0..3).

        For ``x: (B, C, H, W)``: ``E_0: (B, c5, H/32, W/32)`` (bottleneck), ``E_1: (B, c4, H/16, W/16)``
        (token stage), ``E_2: (B, c3, H/8, W/8)`` and ``E_3: (B, c2, H/4, W/4)`` (conv stages 3 and 2),
        each taken after its stage's pooling or final LayerNorm.
        """
        return self._encoder_features(x)[:0:-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> logits (B, num_classes, H, W)``."""
        feats = self._encoder_features(x)
        skips = feats[-2::-1]  # strides 16, 8, 4, 2; the last decoder level has no skip
        out = feats[-1]
        for level, conv in enumerate(self.dec_convs):
            out = F.interpolate(conv(out), scale_factor=2.0, mode="bilinear", align_corners=False)
            if level < len(skips):
                out = out + skips[level]
            if level < len(self.dec_tokens):
                out = self.dec_tokens[level](out)
        return self.head(out)


class FrozenTeacher(nn.Module):
    """A U-KAN encoder frozen as the distillation teacher EM (paper Eq. 2).

    Always in eval mode (BN uses running statistics; ``train()`` is a no-op) with no trainable
    parameters. ``forward(x: (B, C, H, W))`` returns ``ukan.encode(x)`` (``[E_0, .., E_3]``, coarse
    to fine) computed under ``torch.no_grad()``: the outputs are plain tensors, usable as loss
    targets in autograd graphs (unlike ``inference_mode`` tensors).
    """

    def __init__(self, ukan: UKAN) -> None:
        super().__init__()
        self.ukan = ukan
        self.ukan.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Keep the teacher in eval mode whatever ``mode`` is asked for."""
        return super().train(False)

    @property
    def feature_channels(self) -> list[int]:
        return self.ukan.feature_channels

    @property
    def feature_strides(self) -> list[int]:
        return self.ukan.feature_strides

    def forward(self, x: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return self.ukan.encode(x)
