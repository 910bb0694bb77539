"""The Table 1 baselines, pix2pixHD and MedGAN, as ``TrainTask``s of ``meddtfm.training.loop.train``.

Both translate a one-hot mask ``m`` (and a caption, when the data have them: ``MaskToImage``) into an
image with a generator G and are judged by a mask-conditioned PatchGAN D (``MultiScalePatchGAN``;
real ``y`` and fake ``G(m)`` are each concatenated with ``m``; D does not read captions). Each step
has two phases over the same micro-batches, generator first (as in ``MedDTFMTask``): the generator
phase draws ``G(m)`` once, and the discriminator phase reuses it, detached, so G runs once per step.
The adversarial loss is ``AdversarialLoss`` (``gan.adv_kind``, default LSGAN), averaged over scales
with a factor 1/2: ``(1/N_D) sum_s 1/2 E(D_s(G(m)) - 1)^2`` for G.

* pix2pixHD (Wang et al. 2018), ``N_D = 2`` scales, ``lambda_feat = 10``:
  ``L_G = 2 N_D L_adv + lambda_feat L_FM [+ lambda_feat L_VGG]``; the factor ``2 N_D`` restores the
  paper's per-scale sum of MSEs, so that ``lambda_feat`` keeps its weight; ``L_FM`` uses layer weights
  ``4 / (n_layers_D + 1)`` (pix2pixHD's ``pix2pixHD_model.py``).
* MedGAN (Armanious et al. 2020), one 70 x 70 PatchGAN (our reading of the paper; its text could not
  be re-checked offline):
  ``L_G = L_adv + lambda_1 L_perceptual + lambda_2 L_style + lambda_l1 ||y - G(m)||_1`` with the paper's
  ``lambda_1 = 20``, ``lambda_2 = 1e-4`` and all per-layer ``lambda_pi = lambda_sj = 1``. ``L_perceptual``
  is the L1 between D's hidden features of ``y`` and ``G(m)``. Two substitutions, as no ImageNet weights
  load offline: ``L_style`` (Gram matrices) is taken on D's hidden features instead of VGG-19's, and
  the VGG-19 content loss (``lambda_3 = 1e-4``) is left out. The pixel L1 is the i = 0 term of the
  paper's ``L_perceptual`` (D's input, "the pixel sense" of its abstract): weight
  ``lambda_1 lambda_p0 = 20`` (``gan.medgan.l1_weight``). The paper's adversarial loss is the
  cross-entropy cGAN loss; we use LSGAN for both baselines.

The generator's EMA (``train.ema_decay``; ``gan.ema=false`` turns it off) validates, samples and is
exported, as for Med-DT-FM. Validation: mean L1 between ``G(m)`` and ``y`` (best = min).

Each baseline is a ``meddtfm.models.baseline.Baseline`` named in ``BASELINES`` (the catalogue in
``meddtfm.config.baselines``): its generator, its discriminator's scales and its ``LossTerm``s, which
``BaselineObjective`` sums into a callable ``(discriminator, real, fake, mask) -> (loss, terms)``; each
term is a ``GENERATOR_TERMS`` entry reading ``Judged`` (the images and D's features of both). A new
baseline is a generator module with its ``Baseline`` and a config section with one catalogue line.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, load_weights
from ..config import Config, GANConfig, to_dict
from ..config.baselines import BASELINES
from ..data.base import MedicalDataset
from ..models.baseline import LossTerm
from ..models.discriminator import MultiScalePatchGAN
from ..models.pix2pixhd import MaskToImage, VGGLoss
from ..models.text import CaptionTokenizer
from ..registry import Registry
from ..viz import save_sample_grid
from .distributed import DistEnv, head_of, to_device
from .loop import Nets, Phase
from .losses import AdversarialLoss, discriminator_feature_loss, style_loss

Features = list[list[Tensor]]  # per discriminator scale: hidden feature maps, then the patch logits


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)


def _judge(discriminator: nn.Module, real: Tensor, fake: Tensor, mask: Tensor) -> tuple[Features, Features]:
    """D's features of ``real`` (targets: no gradient) and of ``fake`` (gradient flows to G)."""
    fake_out = discriminator(fake, mask)
    with torch.no_grad():
        real_out = discriminator(real, mask)
    return real_out, fake_out


@dataclass(frozen=True)
class Judged:
    """What a generator term reads: real ``y`` and fake ``G(m)`` ``(B, C, H, W)``, and D's features of each."""

    real: Tensor
    fake: Tensor
    real_out: Features
    fake_out: Features


Term = Callable[[Judged], Tensor]


def _adversarial(gan: GANConfig, device: torch.device) -> Term:
    adv = AdversarialLoss(gan.adv_kind)
    return lambda j: adv.generator([o[-1] for o in j.fake_out])


def _features(gan: GANConfig, device: torch.device, layer_weights: float = 1.0) -> Term:
    return lambda j: discriminator_feature_loss(j.real_out, j.fake_out, layer_weights)


def _vgg(gan: GANConfig, device: torch.device, weights: str) -> Term:
    vgg = VGGLoss(weights).to(device)
    return lambda j: vgg(j.fake, j.real)


# A ``LossTerm`` name -> ``(gan config, device, **options) -> term``; every term is a scalar (module docstring).
GENERATOR_TERMS: Registry[Callable[..., Term]] = Registry("baseline loss term")
GENERATOR_TERMS.add("adv_g", "adversarial loss of G (gan.adv_kind), mean over D's scales", _adversarial)
GENERATOR_TERMS.add("feat", "pix2pixHD feature matching: L1 of D's hidden features (layer_weights)", _features)
GENERATOR_TERMS.add("perceptual", "MedGAN perceptual loss: L1 of D's hidden features", _features)
GENERATOR_TERMS.add("style", "MedGAN style loss: Gram matrices of D's hidden features",
                    lambda gan, device: lambda j: style_loss(j.real_out, j.fake_out))
GENERATOR_TERMS.add("l1", "pixel L1 between G(m) and y",
                    lambda gan, device: lambda j: F.l1_loss(j.fake.float(), j.real.float()))
GENERATOR_TERMS.add("vgg", "pix2pixHD VGG-19 feature loss (a local weights file)", _vgg)


class BaselineObjective:
    """``L_G = sum_k w_k term_k`` over a baseline's ``LossTerm``s: ``(D, real, fake, mask) -> (loss, logged)``."""

    def __init__(self, terms: list[LossTerm], gan: GANConfig, device: torch.device) -> None:
        self.terms = [(t.name, t.weight, GENERATOR_TERMS[t.name](gan, device, **t.options)) for t in terms]

    def __call__(self, discriminator: nn.Module, real: Tensor, fake: Tensor,
                 mask: Tensor) -> tuple[Tensor, dict[str, float]]:
        judged = Judged(real, fake, *_judge(discriminator, real, fake, mask))
        loss, logged = None, {}
        for name, weight, term in self.terms:
            value = term(judged)
            loss = weight * value if loss is None else loss + weight * value
            logged[f"loss/{name}"] = value.item()
        return loss, logged


def baseline_objective(model: str, gan: GANConfig, device: torch.device) -> BaselineObjective:
    """The generator objective of ``model`` (a name in ``BASELINES``) under ``gan``."""
    return BaselineObjective(BASELINES[model].losses(gan), gan, device)


def build_baseline(model: str, gan: GANConfig, image_channels: int, mask_classes: int,
                   text: dict | None = None) -> MaskToImage:
    """The generator of ``model`` (a name in ``BASELINES``); ``text``: ``TextEncoder`` kwargs or None."""
    return BASELINES[model].generator(gan, image_channels, mask_classes, text)


def load_baseline(path: str | Path) -> tuple[MaskToImage, dict]:
    """Rebuild a baseline generator (eval mode) from ``final.safetensors`` / ``best.safetensors``.

    Returns ``(generator, config)``; ``config["tokenizer"]`` (or None) rebuilds the caption tokenizer
    with ``CaptionTokenizer.from_state``.
    """
    state, meta = load_weights(path)
    if meta.get("model") not in BASELINES:
        raise CheckpointError(f"{path}: holds model {meta.get('model')!r}, not one of {', '.join(BASELINES)}")
    gan: GANConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GANConfig), meta["gan"]))
    net = build_baseline(meta["model"], gan, meta["image_channels"], meta["mask_classes"], meta["text"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the generator its config describes ({err})") from err
    return net.eval(), meta


class GANTask:
    """``generator`` (the G of ``BASELINES[model]``) and ``discriminator`` trained adversarially (module docstring)."""

    best_metric = ("l1", "min")

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, model: str) -> None:
        gan, baseline = cfg.gan, BASELINES[model]
        self.cfg, self.env, self.model = cfg, env, model
        self.ema_net = "generator" if gan.ema else None
        self.channel_names, self.class_names = dataset.channel_names, dataset.class_names
        captions = [r.caption for r in dataset.records if r.caption]
        use_text = bool(captions) and gan.caption_channels > 0
        self.tokenizer = CaptionTokenizer.fit(captions, max_vocab=cfg.generator.vocab_size) if use_text else None
        text_cfg = cfg.generator
        self.text = {"vocab_size": len(self.tokenizer), "width": text_cfg.text_dim, "layers": text_cfg.text_layers,
                     "heads": text_cfg.text_heads, "max_len": text_cfg.max_caption_len} if self.tokenizer else None
        generator = baseline.generator(gan, dataset.num_channels, dataset.num_classes, self.text)
        scales = baseline.scales(gan)
        coarsest = cfg.data.resolution // 2 ** (scales - 1)
        if coarsest // 2**gan.n_layers_d < 3:  # PatchGAN's last normalised map is coarsest / 2^n - 1 wide
            raise ValueError(f"data.resolution={cfg.data.resolution} is too small for the discriminator: its coarsest "
                             f"scale ({coarsest} px) needs >= {3 * 2**gan.n_layers_d} px with gan.n_layers_d="
                             f"{gan.n_layers_d}{'; lower gan.pix2pixhd.num_d' if scales > 1 else ''} or gan.n_layers_d")
        self.nets = nn.ModuleDict({
            "generator": generator,
            "discriminator": MultiScalePatchGAN(dataset.num_channels, dataset.num_classes, gan.ndf, gan.n_layers_d,
                                                scales),
        })
        self.adv = AdversarialLoss(gan.adv_kind)
        self.objective = baseline_objective(model, gan, env.device)
        self._fakes: list[Tensor] = []  # G(m) of each micro-batch, from the generator phase to the discriminator's
        self._preview: dict | None = None

    def phases(self) -> list[Phase]:
        return [Phase("generator", ["generator"], self.generator_loss),
                Phase("discriminator", ["discriminator"], self.discriminator_loss)]

    def inputs(self, batch: dict) -> tuple[Tensor, Tensor | None]:
        """The generator's ``mask (B, K, H, W)`` and caption ``tokens (B, L)`` (None without captions)."""
        mask = batch["mask"]
        tokens = (self.tokenizer.encode(list(batch["caption"]), self.cfg.generator.max_caption_len).to(mask.device)
                  if self.tokenizer else None)
        return mask, tokens

    def generator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """The baseline's objective on ``G(m)``, judged by D frozen in this phase (no DDP gradient hooks needed)."""
        real, (mask, tokens) = batch["image"], self.inputs(batch)
        fake = nets["generator"](mask, tokens)
        loss, terms = self.objective(_unwrap(nets["discriminator"]), real, fake, mask)
        self._fakes.append(fake.detach())
        return loss, terms

    def discriminator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """``AdversarialLoss.discriminator`` on real ``y`` vs the generator phase's ``G(m)``, in one D pass."""
        fake, real, mask = self._fakes.pop(0), batch["image"], batch["mask"]
        logits = [o[-1] for o in nets["discriminator"](torch.cat([real, fake.to(real.dtype)]), torch.cat([mask, mask]))]
        b = real.shape[0]
        loss = self.adv.discriminator([x[:b] for x in logits], [x[b:] for x in logits])
        return loss, {"loss/adv_d": loss.item()}

    @torch.no_grad()
    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]:
        """Mean absolute error between ``G(m)`` and ``y`` over ``gan.val_batches`` validation batches."""
        gen = nets["generator"].eval()
        total, count = 0.0, 0
        for i, batch in enumerate(loader):
            if i >= self.cfg.gan.val_batches:
                break
            batch = to_device(batch, env.device)
            fake = gen(*self.inputs(batch))
            total += F.l1_loss(fake.float(), batch["image"].float(), reduction="sum").item() / fake[0].numel()
            count += fake.shape[0]
            if self._preview is None:
                self._preview = head_of(batch)
        gen.train()
        return {"l1": total / max(count, 1)}

    @torch.no_grad()
    def snapshot(self, nets: Nets, step: int, out: Path) -> None:
        """``out/samples/step_XXXXXXX.png``: rows of mask overlay on the real image | real | generated."""
        if self._preview is None:
            return
        gen = nets["generator"].eval()
        device = next(gen.parameters()).device
        batch = to_device(self._preview, device)
        fake = gen.generate(*self.inputs(batch))
        gen.train()
        save_sample_grid(batch["image"], batch["mask"], fake, out / "samples" / f"step_{step:07d}.png")

    def export_config(self) -> dict:
        """What ``load_baseline`` needs: model, ``gan`` section, channels, classes, caption encoder, tokenizer."""
        gen = self.nets["generator"]
        return {"model": self.model, "gan": to_dict(self.cfg.gan), "image_channels": gen.image_channels,
                "mask_classes": gen.mask_classes, "text": self.text,
                "channel_names": list(self.channel_names), "class_names": list(self.class_names),
                "tokenizer": self.tokenizer.state_dict() if self.tokenizer else None, "data": to_dict(self.cfg.data)}
