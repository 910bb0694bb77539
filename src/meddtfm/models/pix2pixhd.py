"""pix2pixHD's generator (Wang et al., CVPR 2018) for mask -> image, and what the GAN baselines share.

``MaskToImage`` is the interface of every baseline generator: ``generate(mask (B, K, H, W), tokens
(B, L) or None) -> image (B, C, H, W)`` in [-1, 1]. The baselines take no noise, as in their papers:
an image is a deterministic function of its condition. Their input is the one-hot mask; when the
data have captions and ``gan.caption_channels > 0``, ``TextEncoder`` (our tokenizer, no hub weights)
also gives a caption vector ``e (B, caption_channels)``. Without tokens the generator reads the empty
caption ([CLS] alone; a separate null parameter would sit unused under DDP). An absent mask is the
all-zero mask, as the datasets give it: the baselines cannot tell "no mask given" from "no lesion".

How ``e`` enters: a map broadcast over H x W and concatenated to the mask is spatially constant, and
pix2pixHD's first layer (conv, instance norm without affine) subtracts exactly that constant, so the
caption would be ignored. pix2pixHD therefore adds ``Linear(e)`` as a per-channel shift after the first
instance norm, before the ReLU (a conditional bias); CasNet, whose first layer has no norm, takes the
broadcast map concatenated to the mask. Either way the caption acts through the first nonlinearity.
The mask does not outline healthy anatomy (it has no background classes): with an all-zero mask the
only spatial cue either network has is where its zero-padded convolutions meet the image border.

``Pix2PixHDGenerator`` (pix2pixHD's ``networks.py``, re-implemented): the GlobalGenerator (7 x 7 conv
behind reflection padding, n stride-2 downsamplings, residual blocks, transposed-conv upsampling,
7 x 7 conv, tanh; instance norm without affine, ReLU) and, optionally, one LocalEnhancer: the
global generator, with twice the width and without its output layers, runs on the 2x-downsampled
input, and its features are added to the local branch's before its residual blocks and output.
pix2pixHD trains the global generator first and then both; we train both jointly from the start.
``VGGLoss`` is pix2pixHD's VGG-19 feature loss, built only from a local weights file.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError, GANConfig, Pix2PixHDConfig
from .baseline import Baseline, LossTerm
from .text import CaptionTokenizer, TextEncoder


def init_weights(module: nn.Module) -> None:
    """pix2pix / pix2pixHD init: conv weights ~ N(0, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)


def norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False)


class MaskToImage(nn.Module):
    """Base of the baseline generators: checks the mask, encodes the caption, offers ``generate``.

    Args:
        image_channels: C of the output image.
        mask_classes: K of the one-hot mask (>= 1).
        text: ``TextEncoder`` keyword arguments except ``dim`` (vocab_size, width, layers, heads,
            max_len), or None for no caption path.
        caption_channels: width of the caption vector ``e`` (0: no caption path).
        size_multiple: H and W must be multiples of it (2 ** number of downsamplings).
    """

    def __init__(self, image_channels: int, mask_classes: int, text: dict | None, caption_channels: int,
                 size_multiple: int) -> None:
        super().__init__()
        if image_channels < 1 or mask_classes < 1:
            raise ValueError(f"need image_channels >= 1 and mask_classes >= 1, got {image_channels}, {mask_classes}")
        self.image_channels, self.mask_classes, self.size_multiple = image_channels, mask_classes, size_multiple
        self.text = TextEncoder(dim=caption_channels, **text) if text and caption_channels else None
        self.caption_channels = caption_channels if self.text is not None else 0

    def caption(self, tokens: Tensor | None, mask: Tensor) -> Tensor | None:
        """``e (B, caption_channels)`` of ``tokens (B, L)`` (None: the empty caption); None without a text path."""
        if self.text is None:
            return None
        if tokens is None:
            tokens = torch.full((mask.shape[0], 1), CaptionTokenizer.CLS, dtype=torch.long, device=mask.device)
        return self.text(tokens)

    def translate(self, mask: Tensor, caption: Tensor | None) -> Tensor:
        """``mask (B, K, H, W)``, ``e (B, caption_channels)`` or None -> image ``(B, C, H, W)`` in [-1, 1]."""
        raise NotImplementedError

    def forward(self, mask: Tensor, tokens: Tensor | None = None) -> Tensor:
        m = self.size_multiple
        if mask.ndim != 4 or mask.shape[1] != self.mask_classes or mask.shape[-2] % m or mask.shape[-1] % m:
            raise ValueError(f"mask must be (B, {self.mask_classes}, H, W) with H and W multiples of {m}; "
                             f"got {tuple(mask.shape)}")
        return self.translate(mask.float(), self.caption(tokens, mask))

    @torch.no_grad()
    def generate(self, mask: Tensor, tokens: Tensor | None = None) -> Tensor:
        """Sampling: ``mask (B, K, H, W)``, caption ``tokens (B, L)`` or None -> image ``(B, C, H, W)``."""
        return self(mask, tokens)


class ResnetBlock(nn.Module):
    """``x + [pad, conv3, IN, ReLU, pad, conv3, IN](x)`` with reflection padding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim), nn.ReLU(True),
                                   nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class Stem(nn.Module):
    """pix2pixHD's first layer ``ReLU(IN(conv7x7(pad3(x))) [+ Linear(e)])``: the caption as a shift before the ReLU."""

    def __init__(self, in_ch: int, out_ch: int, caption_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, out_ch, 7), norm(out_ch))
        self.shift = nn.Linear(caption_channels, out_ch) if caption_channels else None

    def forward(self, x: Tensor, caption: Tensor | None) -> Tensor:
        h = self.conv(x)
        if self.shift is not None:
            h = h + self.shift(caption).to(h.dtype)[:, :, None, None]
        return F.relu(h)


def global_body(out_ch: int, ngf: int, n_downsampling: int, n_blocks: int, output: bool) -> nn.Sequential:
    """pix2pixHD's GlobalGenerator after its ``Stem``; ``output=False`` drops the last pad / 7 x 7 conv / tanh
    (inside a LocalEnhancer)."""
    layers: list[nn.Module] = []
    for i in range(n_downsampling):
        c = ngf * 2**i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 2**n_downsampling) for _ in range(n_blocks)]
    for i in range(n_downsampling, 0, -1):
        c = ngf * 2**i
        layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm(c // 2), nn.ReLU(True)]
    if output:
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class Pix2PixHDGenerator(MaskToImage):
    """pix2pixHD's G: GlobalGenerator, or LocalEnhancer around a 2 ngf-wide GlobalGenerator."""

    def __init__(self, cfg: Pix2PixHDConfig, image_channels: int, mask_classes: int, text: dict | None = None,
                 caption_channels: int = 0) -> None:
        local = int(cfg.local_enhancer)
        super().__init__(image_channels, mask_classes, text, caption_channels, 2 ** (cfg.n_downsample_global + local))
        self.cfg, k, cc, ngf, g = cfg, mask_classes, self.caption_channels, cfg.ngf, cfg.ngf * 2**local
        self.global_stem = Stem(k, g, cc)
        self.global_body = global_body(image_channels, g, cfg.n_downsample_global, cfg.n_blocks_global,
                                       output=not local)
        if local:
            self.local_stem = Stem(k, ngf, cc)
            self.local_down = nn.Sequential(nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), norm(2 * ngf),
                                            nn.ReLU(True))
            self.local_up = nn.Sequential(
                *[ResnetBlock(2 * ngf) for _ in range(cfg.n_blocks_local)],
                nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1), norm(ngf), nn.ReLU(True),
                nn.ReflectionPad2d(3), nn.Conv2d(ngf, image_channels, 7), nn.Tanh())
        self.apply(init_weights)

    def translate(self, mask: Tensor, caption: Tensor | None) -> Tensor:
        if not self.cfg.local_enhancer:
            return self.global_body(self.global_stem(mask, caption))
        coarse = F.avg_pool2d(mask, 3, stride=2, padding=1, count_include_pad=False)
        features = self.global_body(self.global_stem(coarse, caption))
        return self.local_up(self.local_down(self.local_stem(mask, caption)) + features)


# torchvision's vgg19().features up to relu5_1 (indices 0..29); "M" is a 2 x 2 max-pool.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
_SLICES = (2, 7, 12, 21, 30)  # ends of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


class VGGLoss(nn.Module):
    """pix2pixHD's ``sum_k w_k ||V_k(x) - V_k(y)||_1`` over VGG-19 relu{1..5}_1, ``w = 1/32, 1/16, 1/8, 1/4, 1``.

    ``weights``: a local file with torchvision's ``vgg19`` state dict (``features.N.*`` keys; .pth or
    .safetensors); nothing is downloaded. Images ``(B, C, H, W)`` in [-1, 1] (H, W >= 16) are mapped to
    [0, 1] and ImageNet-normalised (pix2pixHD feeds [-1, 1] unnormalised); when C != 3 each channel is
    scored as a grey RGB image. The network is frozen.
    """

    layer_weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for v in _VGG19:
            layers += [nn.MaxPool2d(2)] if v == "M" else [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU()]
            prev = v if v != "M" else prev
        self.features = nn.Sequential(*layers)
        self.features.load_state_dict(_read_vgg(Path(weights), len(layers)))
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGLoss:
        """Always in eval mode (frozen)."""
        return super().train(False)

    def _slices(self, x: Tensor) -> list[Tensor]:
        x = x.float()
        if x.shape[1] != 3:
            x = x.reshape(-1, 1, *x.shape[-2:]).expand(-1, 3, -1, -1)
        h, out, start = ((x + 1) / 2 - self.mean) / self.std, [], 0
        for end in _SLICES:
            h = self.features[start:end](h)
            out.append(h)
            start = end
        return out

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        with torch.no_grad():
            targets = self._slices(real)
        return sum(w * F.l1_loss(f, t) for w, f, t in zip(self.layer_weights, self._slices(fake), targets))


def _read_vgg(path: Path, num_layers: int) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(f"gan.pix2pixhd.vgg_weights={str(path)!r} does not exist (give a local VGG-19 weights file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"gan.pix2pixhd.vgg_weights={str(path)!r}: cannot read it ({err})") from err
    kept = {k.removeprefix("features."): v for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) < num_layers}
    if len(kept) != 2 * sum(v != "M" for v in _VGG19):
        raise ConfigError(f"gan.pix2pixhd.vgg_weights={str(path)!r} is not a torchvision vgg19 state dict "
                          "(expected features.N.weight / .bias keys)")
    return kept


def _losses(gan: GANConfig) -> list[LossTerm]:
    """``L_G = 2 N_D L_adv + lambda_feat L_FM [+ lambda_feat L_VGG]`` (pix2pixHD; ``meddtfm.training.gan``):
    ``2 N_D`` restores the paper's per-scale sum of MSEs; ``L_FM``'s layer weights are ``4 / (n_layers_D + 1)``."""
    p, layer_weights = gan.pix2pixhd, 4 / (gan.n_layers_d + 1)
    terms = [LossTerm("adv_g", 2 * p.num_d), LossTerm("feat", p.feat_weight, {"layer_weights": layer_weights})]
    return terms + ([LossTerm("vgg", p.feat_weight, {"weights": p.vgg_weights})] if p.vgg else [])


PIX2PIXHD = Baseline("pix2pixHD",
                     lambda gan, c, k, text: Pix2PixHDGenerator(gan.pix2pixhd, c, k, text, gan.caption_channels),
                     lambda gan: gan.pix2pixhd.num_d, _losses)
