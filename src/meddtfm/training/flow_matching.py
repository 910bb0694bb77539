"""Stage 2: Med-DT-FM, a conditional flow trained with ``L_FM + L_DT + alpha L_adv`` (docs/design.md).

Per micro-batch of real images ``x1`` with masks / captions:

1. draw noise ``x0``, time ``t`` and the condition-dropout flags (for CFG), pair ``x0`` with ``x1``
   (independent or minibatch OT), and form ``x_t = (1 - t) x0 + t x1``;
2. the frozen U-KAN teacher gives ``{E_0..E_3}(x1)`` (Eq. 2), the targets of ``L_DT``; the reference
   ``f_ref = E_0(I_ref)`` of *another* image of the same subject (``meddtfm.data.references``; never
   ``x1`` itself, which sampling never has) seeds bridge 0 (Eq. 6) unless dropped or absent;
3. ``v, {B_i} = VelocityNet(x_t, t, C, f_ref)`` (Eqs. 1, 4, 5);
4. ``L_FM = ||v - (x1 - x0)||^2``, ``L_DT = sum_i lambda_i ||P_i(B_i) - E_i(x1)||^2`` (Eq. 8), and
   ``L_adv`` on the one-step estimate ``x1_hat = x_t + (1 - t) v`` (Eq. 9), after ``adv_start_step``,
   on the rows whose mask reached the generator unchanged: a row with its mask dropped (CFG) or a
   class ablated was generated for another condition than the real mask the discriminator sees.

The training-recipe switches (docs/design.md; all off by default, their losses in ``training.losses``):
``flow.dt_normalize``, ``adv_min_t``, ``adv_weighting``, ``r1_gamma``, ``x1_loss`` and ``ema``.

The random draws of a step are made for the global batch (all ranks) from a generator seeded by
(seed, step, micro-batch), and each rank takes its rows, so a resumed run draws what the
uninterrupted one did, and with ``coupling=independent`` a run on N processes draws exactly what one
process with an N times larger batch draws. ``coupling=ot`` solves the minibatch OT problem on each
rank's rows (N problems of B rows, not one of N B): the pairing, and so the run, depends on N.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..config import Config, to_dict
from ..data.base import MedicalDataset
from ..data.references import attach_references
from ..flow import LinearPath, PathSample, integrate, one_step_estimate, ot_coupling, sample_time
from ..models.discriminator import MultiScalePatchGAN
from ..models.generator import VelocityNet, build_generator
from ..models.projector import ProjectorSet
from ..models.text import CaptionTokenizer
from ..models.ukan import FrozenTeacher
from ..viz import save_sample_grid
from .distributed import DistEnv, head_of, to_device
from .loop import Nets, Phase
from .losses import (
    AdversarialLoss,
    DistillationLoss,
    FlowMatchingLoss,
    OneStepImageLoss,
    R1Penalty,
    discriminator_loss,
)


class MedDTFMTask:
    """Networks ``generator`` (VelocityNet with its CondEncoder), ``projectors`` (P_i) and, when
    ``alpha > 0``, ``discriminator``; the EMA of the generator samples, validates and is exported
    (``flow.ema=false``: the raw generator, as ``gan.ema`` does for the GAN baselines).

    With the reference path on, the training ``dataset`` gets its references attached
    (``meddtfm.data.references``, ``flow.reference_source``): its samples then carry ``reference``.
    """

    best_metric = ("fm_loss", "min")

    def __init__(self, cfg: Config, dataset: MedicalDataset, teacher: FrozenTeacher | None, env: DistEnv) -> None:
        fc = cfg.flow
        if teacher is None and (fc.distills or fc.uses_reference):
            raise ValueError("Med-DT-FM distils from (and seeds its references with) a pretrained U-KAN teacher: "
                             "set encoder.checkpoint to pretrain-encoder's best.safetensors, or turn both off with "
                             "flow.dt_weights=[0,0,0,0] and flow.reference=false")
        _check_recipe(cfg, teacher)
        self.cfg, self.env, self.teacher = cfg, env, teacher
        self.ema_net = "generator" if fc.ema else None
        if teacher is not None and fc.uses_reference:
            attach_references(dataset, fc.reference_source)
        self.channel_names, self.class_names = dataset.channel_names, dataset.class_names
        captions = [r.caption for r in dataset.records if r.caption]
        self.tokenizer = CaptionTokenizer.fit(captions, max_vocab=cfg.generator.vocab_size) if captions else None
        no_text = {**to_dict(cfg.generator), "vocab_size": 0}
        gen_cfg = cfg.generator if self.tokenizer else type(cfg.generator)(**no_text)
        ref_ch = teacher.feature_channels[0] if (teacher is not None and fc.uses_reference) else 0
        generator = build_generator(gen_cfg, dataset.num_channels, dataset.num_classes, ref_ch)
        self.nets = nn.ModuleDict({"generator": generator})
        if fc.distills:
            self.nets["projectors"] = ProjectorSet(generator.level_channels, teacher.feature_channels, fc.projector,
                                                   levels=[i for i, w in enumerate(fc.dt_weights) if w > 0])
        if fc.adv_weight > 0:
            self.nets["discriminator"] = MultiScalePatchGAN(dataset.num_channels, dataset.num_classes,
                                                             fc.disc_channels, fc.disc_layers, fc.disc_scales)
        self.path, self.fm = LinearPath(), FlowMatchingLoss()
        self.dt = DistillationLoss(fc.dt_weights, fc.dt_kind, fc.dt_stop_step, fc.dt_normalize)
        self.adv, self.r1 = AdversarialLoss(fc.adv_kind), R1Penalty(fc.r1_gamma)
        self.x1_loss = OneStepImageLoss(fc.x1_loss, fc.x1_loss_min_t) if fc.x1_loss != "none" else None
        if teacher is not None:
            teacher.to(env.device)
        self._fakes: list[tuple[Tensor, Tensor]] = []  # (x1_hat, kept rows) per micro-batch, for the discriminator
        self._micro = (-1, 0)  # (step, index of the next micro-batch within it)
        self._preview: dict | None = None

    # -- losses ---------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        trains = ["generator"] + (["projectors"] if "projectors" in self.nets else [])
        phases = [Phase("generator", trains, self.generator_loss)]
        if "discriminator" in self.nets:
            phases.append(Phase("discriminator", ["discriminator"], self.discriminator_loss,
                                self.cfg.flow.adv_start_step))
        return phases

    def _draws(self, x1: Tensor, step: int) -> dict[str, Tensor]:
        """This rank's rows of the global batch's noise, times and dropout flags for the next micro-batch."""
        micro = self._micro[1] if self._micro[0] == step else 0
        self._micro = (step, micro + 1)
        b, world, rank = x1.shape[0], self.env.world_size, self.env.rank
        g = torch.Generator(x1.device).manual_seed((self.cfg.seed * 1_000_003 + step) * 1009 + micro)
        fc, n = self.cfg.flow, b * world
        draws = {
            "x0": torch.randn((n, *x1.shape[1:]), generator=g, device=x1.device, dtype=x1.dtype),
            "t": sample_time(n, fc.time_sampling, generator=g, device=x1.device),
            "drop_mask": torch.rand(n, generator=g, device=x1.device) < fc.cond_dropout,
            "drop_caption": torch.rand(n, generator=g, device=x1.device) < fc.cond_dropout,
            "drop_ref": torch.rand(n, generator=g, device=x1.device) < fc.ref_dropout,
            "ablate": torch.rand(n, generator=g, device=x1.device) < fc.class_ablation,
            "ablate_class": torch.randint(0, max(len(self.class_names), 1), (n,), generator=g, device=x1.device),
        }
        return {k: v[rank::world] for k, v in draws.items()}

    def condition_inputs(self, batch: dict, draws: dict[str, Tensor] | None = None) -> dict:
        """Mask, tokens and drop flags for ``VelocityNet.condition`` (no mask or caption -> null)."""
        mask = batch["mask"]
        drop_mask = ~batch["has_mask"].bool()
        captions = batch["caption"]
        tokens = (self.tokenizer.encode(list(captions), self.cfg.generator.max_caption_len).to(mask.device)
                  if self.tokenizer else None)
        drop_caption = torch.tensor([not c for c in captions], device=mask.device)
        if draws is not None:
            drop_mask, drop_caption = drop_mask | draws["drop_mask"], drop_caption | draws["drop_caption"]
            if self.cfg.flow.class_ablation > 0:
                keep = torch.ones_like(mask)
                keep[draws["ablate"], draws["ablate_class"][draws["ablate"]]] = 0
                mask = mask * keep
        return {"mask": mask, "tokens": tokens, "batch_size": mask.shape[0],
                "drop_mask": drop_mask, "drop_caption": drop_caption if tokens is not None else None}

    def generator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        x1 = batch["image"]
        d = self._draws(x1, step)
        x0 = ot_coupling(d["x0"], x1)[0] if self.cfg.flow.coupling == "ot" else d["x0"]
        ps = self.path.sample(x0, x1, d["t"])
        gen: VelocityNet = nets["generator"]
        teacher_feats, f_ref, drop_ref = self._teacher_features(gen, batch, d, step)
        cond = _unwrap(gen).condition(**self.condition_inputs(batch, d))
        v, feats = gen(ps.x_t, ps.t, cond, f_ref, return_features=True, drop_ref=drop_ref)
        loss = self.fm(v, ps.dx_t)
        terms = {"loss/fm": loss.item()}
        if self.dt.active(step):
            projected = nets["projectors"](feats, [e.shape for e in teacher_feats])
            l_dt, levels = self.dt(projected, teacher_feats)
            loss = loss + l_dt
            terms.update({"loss/dt": l_dt.item(), **{f"dt/level{i}": x for i, x in enumerate(levels)}})
        fc = self.cfg.flow
        adversary = "discriminator" in self.nets and step >= fc.adv_start_step
        x1_hat = one_step_estimate(ps.x_t, ps.t, v) if adversary or self.x1_loss is not None else None
        if self.x1_loss is not None:
            l_x1 = self.x1_loss(x1_hat, x1, d["t"])
            loss = loss + fc.x1_loss_weight * l_x1
            terms["loss/x1"] = l_x1.item()
        if adversary:
            keep = self.adversarial_rows(batch, d)
            logits = [out[-1] for out in _unwrap(nets["discriminator"])(x1_hat, batch["mask"])]
            l_adv = self.adv.generator(logits, keep * d["t"] if fc.adv_weighting == "t" else keep)
            loss = loss + fc.adv_weight * l_adv
            terms["loss/adv_g"] = l_adv.item()
            self._fakes.append((x1_hat.detach(), keep))
        return loss, terms

    def _teacher_features(self, gen: nn.Module, batch: dict, draws: dict[str, Tensor], step: int
                          ) -> tuple[list[Tensor] | None, Tensor | None, Tensor | None]:
        """``{E_i}(x1)`` when ``L_DT`` is on; with the reference path, ``f_ref = E_0(reference)`` and the rows
        that go without it (dropped for CFG, or no reference). One teacher pass over the targets and the
        references actually used; a row without one gets zeros in ``f_ref`` (the generator swaps in its null)."""
        x1, want_dt, want_ref = batch["image"], self.dt.active(step), gen_ref(gen)
        if want_ref and "reference" not in batch:
            raise ValueError("the reference path trains on other images of the same subject; this batch has none "
                             "(MedDTFMTask attaches them to the dataset it is given)")
        drop = draws["drop_ref"] | ~batch["has_reference"].bool() if want_ref else None
        inputs = ([x1] if want_dt else []) + ([batch["reference"][~drop]] if want_ref else [])
        feats = self.teacher(torch.cat(inputs)) if sum(len(x) for x in inputs) else None
        b = x1.shape[0]
        teacher_feats = [f[:b] for f in feats] if want_dt else None
        if not want_ref:
            return teacher_feats, None, None
        stride = self.teacher.feature_strides[0]
        f_ref = x1.new_zeros(b, self.teacher.feature_channels[0], x1.shape[-2] // stride, x1.shape[-1] // stride)
        if (~drop).any():
            f_ref[~drop] = feats[0][-int((~drop).sum()):]
        return teacher_feats, f_ref, drop

    def adversarial_rows(self, batch: dict, draws: dict[str, Tensor]) -> Tensor:
        """``(B,)`` bool: rows whose real mask reached the generator unchanged (not dropped, no class ablated)
        and whose time is at least ``flow.adv_min_t``."""
        keep = batch["has_mask"].bool() & ~draws["drop_mask"] & (draws["t"] >= self.cfg.flow.adv_min_t)
        if self.cfg.flow.class_ablation > 0:
            keep = keep & ~draws["ablate"]
        return keep

    def discriminator_loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """Hinge / LSGAN on real ``x1`` vs the generator phase's ``x1_hat``, over the same kept rows; with
        ``flow.r1_gamma > 0`` plus the R1 penalty on those real rows, from the same forward pass."""
        fake, keep = self._fakes.pop(0)
        return discriminator_loss(nets["discriminator"], self.adv, self.r1, batch["image"], fake, batch["mask"], keep)

    # -- validation and snapshots ---------------------------------------------------------------
    @torch.no_grad()
    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]:
        """Validation ``L_FM`` with fixed noise and times (comparable across steps and runs)."""
        gen = nets["generator"].eval()

        def velocity(batch: dict, ps: PathSample) -> Tensor:
            if self._preview is None:
                self._preview = head_of(batch)
            return gen(ps.x_t, ps.t, gen.condition(**self.condition_inputs(batch)))

        loss = validation_fm_loss(velocity, loader, self.cfg.flow.val_batches, env.device, self.path)
        gen.train()
        return {"fm_loss": loss}

    @torch.no_grad()
    def snapshot(self, nets: Nets, step: int, out: Path) -> None:
        """``out/samples/step_XXXXXXX.png``: rows of mask overlay on the real image | real | noise-based sample."""
        if self._preview is None:
            return
        gen = nets["generator"].eval()
        device = next(gen.parameters()).device
        batch = to_device(self._preview, device)
        cond = gen.condition(**self.condition_inputs(batch))
        x0 = torch.randn(batch["image"].shape, generator=torch.Generator(device).manual_seed(0), device=device)
        x = integrate(lambda x, t: gen(x, t, cond), x0, "heun", steps=self.cfg.flow.sample_steps).x
        gen.train()
        save_sample_grid(batch["image"], batch["mask"], x, out / "samples" / f"step_{step:07d}.png")

    def export_config(self) -> dict:
        """What sampling needs to rebuild the generator: its config, data channels, classes, tokenizer, teacher."""
        gen = self.nets["generator"]
        return {"model": "meddtfm", "generator": to_dict(gen.cfg), "image_channels": gen.image_channels,
                "mask_classes": len(self.class_names), "ref_channels": gen.ref_channels,
                "channel_names": list(self.channel_names), "class_names": list(self.class_names),
                "tokenizer": self.tokenizer.state_dict() if self.tokenizer else None,
                "teacher": self.cfg.encoder.checkpoint if self.teacher is not None else None,
                "data": to_dict(self.cfg.data), "flow": to_dict(self.cfg.flow)}


def validation_fm_loss(velocity: Callable[[dict, PathSample], Tensor], loader: DataLoader, batches: int,
                       device: torch.device, path: LinearPath) -> float:
    """Mean ``L_FM = ||velocity(batch, x_t, t) - dx_t||^2`` over the first ``batches`` validation batches.

    Batch ``i`` draws its noise ``x0`` and times ``t`` from the seed 10 000 + i, so the figure is
    comparable across steps, runs and models (the MONAI peer of the benchmarks uses it too).
    """
    total, count = 0.0, 0
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        batch = to_device(batch, device)
        x1 = batch["image"]
        g = torch.Generator(x1.device).manual_seed(10_000 + i)
        x0 = torch.randn(x1.shape, generator=g, device=x1.device)
        ps = path.sample(x0, x1, torch.rand(x1.shape[0], generator=g, device=x1.device))
        total += FlowMatchingLoss()(velocity(batch, ps), ps.dx_t).item() * x1.shape[0]
        count += x1.shape[0]
    return total / max(count, 1)


def _check_recipe(cfg: Config, teacher: FrozenTeacher | None) -> None:
    """Refuse switches that cannot work together (ValueError naming the keys)."""
    fc = cfg.flow
    if fc.r1_gamma > 0 and fc.adv_weight > 0 and cfg.train.compile:
        raise ValueError("flow.r1_gamma > 0 differentiates the discriminator's input gradient (double backward), "
                         "which torch.compile does not support: set train.compile=false or flow.r1_gamma=0")
    if fc.dt_normalize == "spatial" and teacher is not None:
        flat = [i for i, (w, s) in enumerate(zip(fc.dt_weights, teacher.feature_strides))
                if w > 0 and cfg.data.resolution // s < 2]
        if flat:
            raise ValueError(f"flow.dt_normalize=spatial normalises each teacher map over its positions, but at "
                             f"data.resolution={cfg.data.resolution} the map of level(s) {flat} is 1 x 1: set their "
                             "flow.dt_weights to 0 or raise data.resolution")


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)


def gen_ref(gen: nn.Module) -> bool:
    """Whether the generator has the reference path of Eq. 6."""
    return bool(_unwrap(gen).ref_channels)
