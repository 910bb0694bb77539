"""The velocity network ``v(x_t, t, C)`` of Med-DT-FM: flow stages FM_i and bridges BM_i (paper §2.2).

A U-Net in the spirit of guided-diffusion / EDM's DhariwalUNet, arranged around the paper's parts:
stem conv, encoder stages (ResBlocks, stride-2 convs) down to the bottleneck, then for each level
``i = 0..L-1`` (coarse to fine; level 0 is the bottleneck at ``S / 2^(L-1)``, level L-1 is full size):

- ``FM_i`` (Eq. 5, ``FM_i_out = h_psi_i(FM_{i-1}_out)``), a ``FlowStage``: for ``i > 0`` nearest x2
  upsampling + conv from level i-1, concatenation of the encoder skip of level i, ResBlocks; for
  ``i = 0`` the bottleneck's ResBlock, optional self-attention, ResBlock.
- ``BM_i`` (Eq. 4, ``B_i = g_phi_i([FM_i_out, C])``), a ``BridgeModule`` fusing ``C_i``.

Then GroupNorm-SiLU-conv gives the velocity. ResBlocks and bridges are modulated (AdaGN
scale-shift) by ``emb = MLP(sinusoid(1000 t)) + Linear(caption vector)``. Residual branches and the
output conv start near zero (weights x 1e-5, as EDM's ``init_zero``): each block starts close to the
identity, yet every parameter gets a gradient from the first step.

Reference seeding (Eq. 6, ``f_syn <- BM_0(f_ref)``): an adapter maps the teacher's ``E_0`` of a
reference image to level 0 (conv 1x1, SiLU, conv 1x1, bilinear resize; no norm: ``E_0`` leaves U-KAN
LayerNorm-ed, and a GroupNorm over its 1x1 or 2x2 grid at 32-64 px would erase it) and BM_0 takes it
as extra condition channels next to ``C_0``; without a reference a learned null map takes its place.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import CheckpointError, rebuild
from ..config import GeneratorConfig
from .blocks import ResBlock, SelfAttention, small_init, time_embedding
from .cond import CondEncoder, Condition, apply_drop, group_norm

__all__ = ["BridgeModule", "FlowStage", "VelocityNet", "build_generator", "load_velocity_net"]

BRIDGE_MODES = ("spade", "concat")


class FlowStage(nn.Module):
    """FM_i, ``FM_i_out = h_psi_i(FM_{i-1}_out)`` (Eq. 5): ``(B, in_ch, h, w) -> (B, out_ch, 2h or h, ...)``.

    With ``upsample``: nearest x2 + conv3x3, then the encoder skip (``skip_ch`` channels) is
    concatenated; then ``num_blocks`` ResBlocks, with self-attention after the first if ``attention``.
    """

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int, emb_dim: int, num_blocks: int, upsample: bool,
                 attention: bool, head_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.up = nn.Conv2d(in_ch, out_ch, 3, padding=1) if upsample else None
        ch = (out_ch if upsample else in_ch) + skip_ch
        blocks: list[nn.Module] = []
        for k in range(num_blocks):
            blocks.append(ResBlock(ch, out_ch, emb_dim, dropout, groups))
            ch = out_ch
            if k == 0 and attention:
                blocks.append(SelfAttention(out_ch, head_dim, groups))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, emb: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.up is not None:
            x = self.up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        for block in self.blocks:
            x = block(x, emb)
        return x


class BridgeModule(nn.Module):
    """BM_i, ``B_i = g_phi_i([FM_i_out, C])`` (Eq. 4): ``x (B, ch, h, w)``, ``C_i (B, cond_ch, h, w)`` -> ``B_i``.

    ``C_i`` may be ``(B, cond_ch, 1, 1)`` (a null condition); it is broadcast over space.

    ``spade``: parameter-free GroupNorm of ``x`` modulated by ``gamma, beta = conv(SiLU(conv(c)))``
    (Park et al. 2019), SiLU, conv. ``concat``: conv over ``[SiLU(GN(x)), c]``. Then AdaGN by the
    time + caption embedding, SiLU, dropout, conv, and a residual connection to ``x``.
    """

    def __init__(self, ch: int, cond_ch: int, emb_dim: int, mode: str, dropout: float, groups: int) -> None:
        super().__init__()
        if mode not in BRIDGE_MODES:
            raise ValueError(f"bridge mode {mode!r} is not one of {', '.join(BRIDGE_MODES)}")
        self.mode = mode
        self.norm = group_norm(ch, groups, affine=mode == "concat")
        if mode == "spade":
            hidden = nn.Conv2d(cond_ch, ch, 3, padding=1)
            self.spade = nn.Sequential(hidden, nn.SiLU(), nn.Conv2d(ch, 2 * ch, 3, padding=1))
        self.fuse = nn.Conv2d(ch + (cond_ch if mode == "concat" else 0), ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * ch)
        self.norm2, self.drop = group_norm(ch, groups), nn.Dropout(dropout)
        self.out = small_init(nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: Tensor, c: Tensor, emb: Tensor) -> Tensor:
        c = c.expand(-1, -1, *x.shape[-2:]).to(x.dtype)
        if self.mode == "spade":
            gamma, beta = self.spade(c).chunk(2, dim=1)
            h = self.fuse(F.silu(self.norm(x) * (1 + gamma) + beta))
        else:
            h = self.fuse(torch.cat([F.silu(self.norm(x)), c], dim=1))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        return x + self.out(self.drop(F.silu(self.norm2(h) * (1 + scale) + shift)))


class VelocityNet(nn.Module):
    """``v(x_t, t, C)``: ``x_t (B, image_channels, H, W)``, ``t (B,)`` -> velocity of the same shape.

    H and W must be divisible by ``2^(L-1)``. Owns the ``CondEncoder`` (``self.cond_encoder``, or
    ``self.condition(...)``), so one module holds every trained weight; encode the condition once
    per sample and reuse it at every ODE step. ``ref_channels``: channels of the teacher's ``E_0``
    for reference seeding (Eq. 6); 0 builds no reference path.
    """

    def __init__(self, cfg: GeneratorConfig, image_channels: int, mask_classes: int, ref_channels: int = 0) -> None:
        super().__init__()
        if image_channels < 1 or ref_channels < 0:
            raise ValueError(f"need image_channels >= 1, ref_channels >= 0, got {image_channels}, {ref_channels}")
        self.cfg, self.image_channels, self.ref_channels = cfg, image_channels, ref_channels
        enc = [cfg.base_channels * m for m in cfg.channel_mult]  # fine to coarse
        self.level_channels = enc[::-1]  # coarse to fine: the channels of B_0 .. B_{L-1}
        self.num_levels, g, e, d = len(enc), cfg.norm_groups, cfg.time_dim, cfg.dropout
        self.cond_encoder = CondEncoder(
            mask_classes, cfg.cond_channels, cfg.text_dim, cfg.vocab_size, cfg.text_layers, cfg.text_heads,
            cfg.max_caption_len, d,
        )
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.duration_embedding:  # MeanFlow's h; zero output at first: u(x_t, t, h) = v(x_t, t) for every h
            self.duration_mlp = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
            nn.init.zeros_(self.duration_mlp[-1].weight)
            nn.init.zeros_(self.duration_mlp[-1].bias)
        self.vector_proj = nn.Linear(cfg.text_dim, e)
        self.stem = nn.Conv2d(image_channels, enc[0], 3, padding=1)
        self.encoder = nn.ModuleList()
        for j, ch in enumerate(enc):
            prev = enc[max(j - 1, 0)]
            down = [nn.Conv2d(prev, prev, 3, stride=2, padding=1)] if j else []
            res = [ResBlock(prev if k == 0 else ch, ch, e, d, g) for k in range(cfg.num_res_blocks)]
            self.encoder.append(nn.ModuleList(down + res))
        lc, cc = self.level_channels, list(cfg.cond_channels)
        self.flows = nn.ModuleList(
            [FlowStage(lc[0], lc[0], 0, e, 2, False, cfg.attention_at_bottleneck, cfg.attention_head_dim, d, g)]
            + [FlowStage(lc[i - 1], lc[i], lc[i], e, cfg.num_res_blocks, True, False, 0, d, g)
               for i in range(1, self.num_levels)]
        )
        ref_ch = cc[0] if ref_channels else 0
        self.bridges = nn.ModuleList(
            BridgeModule(lc[i], cc[i] + (0 if i else ref_ch), e, cfg.bridge_mode, d, g) for i in range(self.num_levels)
        )
        if ref_channels:
            adapter = [nn.Conv2d(ref_channels, ref_ch, 1), nn.SiLU(), nn.Conv2d(ref_ch, ref_ch, 1)]
            self.ref_adapter = nn.Sequential(*adapter)
            self.null_ref = nn.Parameter(torch.randn(ref_ch) * 0.02)
        out_conv = small_init(nn.Conv2d(enc[0], image_channels, 3, padding=1))
        self.out = nn.Sequential(group_norm(enc[0], g), nn.SiLU(), out_conv)

    def condition(self, mask: Tensor | None, tokens: Tensor | None, batch_size: int,
                  drop_mask: Tensor | None = None, drop_caption: Tensor | None = None) -> Condition:
        """``self.cond_encoder(...)``: the ``Condition`` C of Eq. 1."""
        return self.cond_encoder(mask, tokens, batch_size, drop_mask, drop_caption)

    def _reference(self, f_ref: Tensor | None, drop_ref: Tensor | None, b: int, size: tuple[int, int]) -> Tensor:
        """Level-0 reference map ``(B, cond_channels[0], h_0, w_0)`` from ``f_ref`` or the learned null."""
        null = self.null_ref.view(1, -1, 1, 1)
        if f_ref is None:
            return null.expand(b, -1, *size)
        if f_ref.ndim != 4 or f_ref.shape[:2] != (b, self.ref_channels):
            raise ValueError(f"f_ref must be (B={b}, {self.ref_channels}, h, w), got {tuple(f_ref.shape)}")
        r = F.interpolate(self.ref_adapter(f_ref.to(null.dtype)), size=size, mode="bilinear", align_corners=False)
        return apply_drop(r, null, drop_ref)

    def _check(self, x_t: Tensor, cond: Condition) -> None:
        down = 2 ** (self.num_levels - 1)
        if x_t.ndim != 4 or x_t.shape[1] != self.image_channels or x_t.shape[-2] % down or x_t.shape[-1] % down:
            raise ValueError(f"x_t must be (B, {self.image_channels}, H, W), H and W divisible by {down}; "
                             f"got {tuple(x_t.shape)}")
        b, _, h, w = x_t.shape
        if len(cond.levels) != self.num_levels or cond.batch_size != b:
            raise ValueError(f"condition needs {self.num_levels} levels and batch {b}, got {len(cond.levels)} and "
                             f"{cond.batch_size}")
        for i, c in enumerate(cond.levels):
            size = (h * 2**i // down, w * 2**i // down)
            if tuple(c.shape[-2:]) not in ((1, 1), size):
                raise ValueError(f"C_{i} is {tuple(c.shape[-2:])}, level {i} needs {size}: mask and x_t sizes differ")

    def forward(
        self, x_t: Tensor, t: Tensor, cond: Condition, f_ref: Tensor | None = None, return_features: bool = False,
        *, drop_ref: Tensor | None = None, duration: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Velocity ``(B, C, H, W)``, plus the bridge outputs ``[B_0, .., B_{L-1}]`` (coarse to fine,
        ``(B, level_channels[i], H / 2^(L-1-i), W / 2^(L-1-i))``) when ``return_features``.

        ``t``: (B,) or a scalar. ``f_ref``: the teacher's ``E_0`` of a reference image (Eq. 6),
        ``(B, ref_channels, h, w)``; ``drop_ref`` (B,) bool swaps it for the null per sample.
        ``duration``: MeanFlow's ``h`` (B,) or a scalar, only with ``generator.duration_embedding``: the
        output is then the average velocity ``u(x_t, t, h)`` over ``[t, t + h]`` (``h = 0``: the velocity).
        """
        self._check(x_t, cond)
        if f_ref is not None and not self.ref_channels:
            raise ValueError("f_ref given, but this VelocityNet was built with ref_channels=0")
        b = x_t.shape[0]
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        if t.shape != (b,):
            raise ValueError(f"t must be a scalar or of shape ({b},), got {tuple(t.shape)}")
        emb = self.time_mlp(time_embedding(t, self.cfg.base_channels).to(x_t.dtype))
        if duration is not None:
            if not self.cfg.duration_embedding:
                raise ValueError("duration given, but this VelocityNet was built without generator.duration_embedding")
            h = duration.reshape(-1).expand(b) if duration.numel() == 1 else duration
            emb = emb + self.duration_mlp(time_embedding(h, self.cfg.base_channels).to(x_t.dtype))
        emb = F.silu(emb + self.vector_proj(cond.vector))
        h, skips = self.stem(x_t), []
        for stage in self.encoder:
            for layer in stage:
                h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        features: list[Tensor] = []
        for i, (flow, bridge) in enumerate(zip(self.flows, self.bridges)):
            h = flow(h, emb, skips[-1 - i] if i else None)
            c = cond.levels[i]
            if i == 0 and self.ref_channels:
                ref = self._reference(f_ref, drop_ref, b, (h.shape[-2], h.shape[-1]))
                c = torch.cat([c.expand(-1, -1, *h.shape[-2:]).to(ref.dtype), ref], dim=1)
            h = bridge(h, c, emb)
            features.append(h)
        v = self.out(h)
        return (v, features) if return_features else v


def build_generator(cfg: GeneratorConfig, image_channels: int, mask_classes: int, ref_channels: int = 0) -> VelocityNet:
    """The Med-DT-FM generator for ``image_channels``-channel images, K = ``mask_classes`` lesion
    classes (0: captions only) and a teacher ``E_0`` with ``ref_channels`` channels (0: no reference)."""
    return VelocityNet(cfg, image_channels, mask_classes, ref_channels)


def load_velocity_net(path: str | Path) -> tuple[VelocityNet, dict]:
    """The ``VelocityNet`` of a ``meddtfm train`` or ``distill-steps`` weights file, in eval mode, and its metadata.

    ``CheckpointError`` (naming the file) for a missing file, another kind of model (a GAN baseline) or
    weights that do not fit the network the metadata describes.
    """
    def build(meta: dict) -> VelocityNet:
        if meta.get("model") != "meddtfm":
            raise CheckpointError(f"{path}: not a `meddtfm train` generator (model={meta.get('model')!r})")
        return build_generator(GeneratorConfig(**meta["generator"]), meta["image_channels"], meta["mask_classes"],
                               meta["ref_channels"])

    return rebuild(path, build, "generator")
