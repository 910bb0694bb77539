"""What every few-step method shares: the base flow, its frozen copy (the teacher), the student, the export.

The student is a copy of the base flow's generator (with MeanFlow's duration embedding added at zero, so
it starts as the flow) and is fine-tuned by ``meddtfm.training.loop.train``; the teacher is the base
flow itself, frozen, sampled with ``few_step.teacher_solver`` at ``few_step.teacher_nfe`` and guidance
``few_step.cfg``. The student is trained on the real conditions only (no condition dropout): the
teacher's guidance is what it learns, so it samples unguided in one pass per step (``flow.few_step``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ...checkpoint import CheckpointError
from ...config import Config, FlowConfig, GeneratorConfig, to_dict
from ...data.base import MedicalDataset
from ...flow.few_step import FewStep, few_step_sample
from ...flow.sampling import ConditionInputs, Guidance, SolverSpec
from ...models.cond import Condition
from ...models.generator import VelocityNet, build_generator, load_velocity_net
from ...models.text import CaptionTokenizer
from ...viz import save_sample_grid
from ..distributed import DistEnv, head_of, to_device
from ..loop import Nets, Phase
from .teacher import TeacherTargets


@dataclass
class BaseFlow:
    """A trained Med-DT-FM flow: its generator (eval mode), weights file, metadata and caption tokenizer."""

    net: VelocityNet
    path: Path
    meta: dict
    tokenizer: CaptionTokenizer | None

    @property
    def images(self) -> int:
        """Training images it saw: the loop's record, else steps x data.batch_size (a lower bound: one process)."""
        if "images" in self.meta:
            return int(self.meta["images"])
        return int(self.meta.get("step", 0)) * int(self.meta["data"]["batch_size"])


def recorded_sections(meta: dict) -> tuple[GeneratorConfig, FlowConfig]:
    """The generator and flow sections a flow's weights record (``meta``); a student keeps both. Keys the
    record lacks take their defaults; the generator's is the network as built (``vocab_size`` 0 without captions)."""
    def section(cls: type, values: dict | None):
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values or {}))

    return section(GeneratorConfig, meta["generator"]), section(FlowConfig, meta.get("flow"))


def load_base_flow(path: str | Path) -> BaseFlow:
    """The flow of ``meddtfm train`` in ``path``; ``CheckpointError`` for a missing file, a GAN baseline or a
    generator that is already a few-step one."""
    net, meta = load_velocity_net(path)
    if FewStep.from_meta(meta) is not None:
        raise CheckpointError(f"{FewStep.from_meta(meta).describe(path)}: distil the many-step flow it came from, "
                              f"{meta['few_step']['base']}")
    tokenizer = CaptionTokenizer.from_state(meta["tokenizer"]) if meta.get("tokenizer") else None
    return BaseFlow(net.requires_grad_(False), Path(path), meta, tokenizer)


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)


class FewStepTask:
    """The ``TrainTask`` skeleton of a method: ``generator`` (the student) in ``nets``, its EMA exported.

    Subclasses add networks and give ``phases``. ``duration``: build the student with MeanFlow's second
    time input. The base flow's weights file is ``cfg.few_step.checkpoint``.
    """

    best_metric = None
    ema_net = "generator"

    def __init__(self, cfg: Config, dataset: MedicalDataset, env: DistEnv, base: BaseFlow,
                 duration: bool = False) -> None:
        meta = base.meta
        if tuple(dataset.channel_names) != tuple(meta["channel_names"]) or tuple(dataset.class_names) != tuple(
                meta["class_names"]):
            raise ValueError(f"the data ({list(dataset.channel_names)}, {list(dataset.class_names)}) are not what "
                             f"{base.path} was trained on ({meta['channel_names']}, {meta['class_names']})")
        self.cfg, self.env, self.base = cfg, env, base
        self.teacher = base.net.to(env.device).eval()
        fs = cfg.few_step
        self.guidance = Guidance(fs.cfg, fs.cfg)
        self.targets = TeacherTargets(self.teacher, cfg.seed, SolverSpec(fs.teacher_solver, fs.teacher_nfe),
                                      self.guidance)
        gen_cfg = dataclasses.replace(base.net.cfg, duration_embedding=duration)
        student = build_generator(gen_cfg, base.net.image_channels, len(meta["class_names"]), base.net.ref_channels)
        missing, unexpected = student.load_state_dict(base.net.state_dict(), strict=False)
        if unexpected or any(not k.startswith("duration_mlp.") for k in missing):
            raise CheckpointError(f"{base.path}: weights do not fit the student ({missing}, {unexpected})")
        self.nets = nn.ModuleDict({"generator": student.train()})
        self.class_names = tuple(meta["class_names"])
        self._micro = (-1, 0)
        self._preview: dict | None = None

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    # -- per-step draws and conditions --------------------------------------------------------------
    def step_generator(self, step: int, device: torch.device) -> torch.Generator:
        """A generator seeded by (seed, step, micro-batch, rank): a resumed run draws what the uninterrupted one did."""
        micro = self._micro[1] if self._micro[0] == step else 0
        self._micro = (step, micro + 1)
        seed = ((self.cfg.seed * 1_000_003 + step) * 1009 + micro) * 257 + self.env.rank
        return torch.Generator(device).manual_seed(seed)

    def pairs(self, batch: dict, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(x0, x1_T)`` (B, C, H, W): each row's noise, drawn from its ``few_step.noise_pool``, and the teacher's
        output for it."""
        js = torch.randint(0, self.cfg.few_step.noise_pool, (batch["image"].shape[0],), generator=g, device=g.device)
        return self.targets(batch, self.condition_inputs(batch), js)

    def condition_inputs(self, batch: dict) -> ConditionInputs:
        """The batch's own masks and captions (no dropout); a sample without a mask / caption gets the null."""
        mask, captions = batch["mask"].float(), list(batch["caption"])
        tokens = (self.base.tokenizer.encode(captions, self.base.net.cfg.max_caption_len).to(mask.device)
                  if self.base.tokenizer else None)
        drop_caption = torch.tensor([not c for c in captions], device=mask.device) if tokens is not None else None
        return ConditionInputs(mask.shape[0], mask, tokens, ~batch["has_mask"].bool(), drop_caption)

    def student_condition(self, nets: Nets, batch: dict) -> Condition:
        """``C`` of the batch, encoded by the student's own (trained) condition encoder."""
        if self._preview is None:
            self._preview = head_of(batch)
        return _unwrap(nets["generator"]).condition(**self.condition_inputs(batch).stacked(["full"]))

    # -- the loop's hooks ---------------------------------------------------------------------------
    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]:
        """No validation figure: ``distill-steps`` runs without a validation set (the base flow chose its split)."""
        return {}

    @torch.no_grad()
    def snapshot(self, nets: Nets, step: int, out: Path) -> None:
        """``out/samples/step_XXXXXXX_nfeK.png`` for each trained k: mask over real | real | k-step sample."""
        if self._preview is None:
            return
        gen = nets["generator"].eval()
        device = next(gen.parameters()).device
        batch = to_device(self._preview, device)
        cond = gen.condition(**self.condition_inputs(batch).stacked(["full"]))
        x0 = torch.randn(batch["image"].shape, generator=torch.Generator(device).manual_seed(0), device=device)
        for k in self.cfg.few_step.steps:
            x = few_step_sample(gen, x0, cond, k).clamp(-1, 1)
            save_sample_grid(batch["image"], batch["mask"], x, out / "samples" / f"step_{step:07d}_nfe{k}.png")
        gen.train()

    def export_config(self) -> dict:
        """The base flow's metadata with the student's generator config and the ``few_step`` record (``FewStep``)."""
        fs = self.cfg.few_step
        record = FewStep(fs.method, tuple(fs.steps), fs.cfg, str(self.base.path), self.base.images)
        gen: VelocityNet = self.nets["generator"]
        return {**self.base.meta, "generator": to_dict(gen.cfg), "few_step": record.to_meta(),
                "distillation": to_dict(fs)}

