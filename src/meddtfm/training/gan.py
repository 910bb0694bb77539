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
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, load_weights
from ..config import Config, GANConfig, to_dict
from ..data.base import MedicalDataset
from ..models.discriminator import MultiScalePatchGAN
from ..models.medgan import CasNet
from ..models.pix2pixhd import MaskToImage, Pix2PixHDGenerator, VGGLoss
from ..models.text import CaptionTokenizer
from ..viz import save_sample_grid
from .distributed import DistEnv, head_of, to_device
from .loop import Nets, Phase
from .losses import AdversarialLoss, discriminator_feature_loss, style_loss

BASELINES = ("pix2pixhd", "medgan")


def build_baseline(model: str, gc: GANConfig, image_channels: int, mask_classes: int,
                   text: dict | None = None) -> MaskToImage:
    """The generator of ``model`` (pix2pixhd | medgan); ``text``: ``TextEncoder`` kwargs or None."""
    if model == "pix2pixhd":
        return Pix2PixHDGenerator(gc.pix2pixhd, image_channels, mask_classes, text, gc.caption_channels)
    if model == "medgan":
        return CasNet(gc.medgan, image_channels, mask_classes, text, gc.caption_channels)
    raise ValueError(f"unknown baseline {model!r}; expected one of {BASELINES}")


def load_baseline(path: str | Path) -> tuple[MaskToImage, dict]:
    """Rebuild a baseline generator (eval mode) from ``final.safetensors`` / ``best.safetensors``.

    Returns ``(generator, config)``; ``config["tokenizer"]`` (or None) rebuilds the caption tokenizer
    with ``CaptionTokenizer.from_state``.
    """
    state, meta = load_weights(path)
    if meta.get("model") not in BASELINES:
        raise CheckpointError(f"{path}: holds model {meta.get('model')!r}, not one of {BASELINES}")
    gc: GANConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GANConfig), meta["gan"]))
    net = build_baseline(meta["model"], gc, meta["image_channels"], meta["mask_classes"], meta["text"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the generator its config describes ({err})") from err
    return net.eval(), meta


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)


class GANTask:
    """``generator`` (pix2pixHD's G or CasNet) and ``discriminator`` trained adversarially (module docstring)."""

    best_metric = ("l1", "min")

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, model: str) -> None:
        gc = cfg.gan
        self.cfg, self.env, self.model = cfg, env, model
        self.ema_net = "generator" if gc.ema else None
        self.channel_names, self.class_names = dataset.channel_names, dataset.class_names
        captions = [r.caption for r in dataset.records if r.caption]
        use_text = bool(captions) and gc.caption_channels > 0
        self.tokenizer = CaptionTokenizer.fit(captions, max_vocab=cfg.generator.vocab_size) if use_text else None
        g = cfg.generator
        self.text = {"vocab_size": len(self.tokenizer), "width": g.text_dim, "layers": g.text_layers,
                     "heads": g.text_heads, "max_len": g.max_caption_len} if self.tokenizer else None
        generator = build_baseline(model, gc, dataset.num_channels, dataset.num_classes, self.text)
        scales = gc.pix2pixhd.num_d if model == "pix2pixhd" else 1
        coarsest = cfg.data.resolution // 2 ** (scales - 1)
        if coarsest // 2**gc.n_layers_d < 3:  # PatchGAN's last normalised map is coarsest / 2^n - 1 wide
            raise ValueError(f"data.resolution={cfg.data.resolution} is too small for the discriminator: its coarsest "
                             f"scale ({coarsest} px) needs >= {3 * 2**gc.n_layers_d} px with gan.n_layers_d={gc.n_layers_d}"
                             f"{'; lower gan.pix2pixhd.num_d' if scales > 1 else ''} or gan.n_layers_d")
        self.nets = nn.ModuleDict({
            "generator": generator,
            "discriminator": MultiScalePatchGAN(dataset.num_channels, dataset.num_classes, gc.ndf, gc.n_layers_d, scales),
        })
        self.adv = AdversarialLoss(gc.adv_kind)
        self.vgg = VGGLoss(gc.pix2pixhd.vgg_weights).to(env.device) if model == "pix2pixhd" and gc.pix2pixhd.vgg else None
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
        real, (mask, tokens) = batch["image"], self.inputs(batch)
        fake = nets["generator"](mask, tokens)
        disc = _unwrap(nets["discriminator"])  # frozen in this phase: no DDP gradient hooks needed
        fake_out = disc(fake, mask)
        with torch.no_grad():
            real_out = disc(real, mask)
        l_adv = self.adv.generator([o[-1] for o in fake_out])
        terms = {"loss/adv_g": l_adv.item()}
        if self.model == "pix2pixhd":
            pc, n_d = self.cfg.gan.pix2pixhd, len(fake_out)
            l_fm = discriminator_feature_loss(real_out, fake_out, 4 / (self.cfg.gan.n_layers_d + 1))
            loss = 2 * n_d * l_adv + pc.feat_weight * l_fm
            terms["loss/feat"] = l_fm.item()
            if self.vgg is not None:
                l_vgg = self.vgg(fake, real)
                loss = loss + pc.feat_weight * l_vgg
                terms["loss/vgg"] = l_vgg.item()
        else:
            mc = self.cfg.gan.medgan
            l_perc, l_style = discriminator_feature_loss(real_out, fake_out), style_loss(real_out, fake_out)
            l_l1 = F.l1_loss(fake.float(), real.float())
            loss = l_adv + mc.perceptual_weight * l_perc + mc.style_weight * l_style + mc.l1_weight * l_l1
            terms.update({"loss/perceptual": l_perc.item(), "loss/style": l_style.item(), "loss/l1": l_l1.item()})
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
