"""The generators behind a pipeline: a Med-DT-FM flow (``Synthesizer``) or a one-pass GAN baseline.

Both take checked inputs (masks ``(B, K, R, R)``, captions, references ``(B, C, R, R)``, one seed per
sample) and return images ``(B, C, R, R)`` in [-1, 1] with the velocity evaluations used.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError
from ..flow.sampling import Guidance, SolverSpec
from ..models.text import CaptionTokenizer
from ..synthesis import GeneratorMeta, Start, Synthesizer, load_generator, sampling_spec
from ..training.gan import BASELINES, load_baseline
from .inputs import InputError


@dataclass(frozen=True)
class Settings:
    """How to sample a flow (``meddtfm sample``'s options); a GAN ignores them. ``cfg_caption`` None: ``cfg``."""

    nfe: int | None = None  # None: 8 for a flow, the fewest trained steps for a few-step generator
    cfg: float | None = None  # None: 2 for a flow, the scale distilled into a few-step generator
    cfg_caption: float | None = None
    solver: str = "auto"  # auto: heun for a flow, the few-step generator's own Euler steps
    t0: float = 0.0
    start: Start = "invert"
    blend_dilation: int | None = None


class FlowModel:
    """A ``meddtfm train`` generator; ``missing_teacher`` says why reference mode is unavailable, if it is."""

    kind = "meddtfm"

    def __init__(self, net: nn.Module, meta: GeneratorMeta, missing_teacher: str | None = None) -> None:
        self.net, self.meta, self.missing_teacher = net, meta, missing_teacher
        self.channel_names, self.class_names = meta.channel_names, meta.class_names
        self.resolution, self.tokenizer = meta.resolution, meta.tokenizer
        self.data, self.needs_teacher = meta.data, bool(net.ref_channels)

    def synthesizer(self, spec: SolverSpec = SolverSpec(), guidance: Guidance = Guidance()) -> Synthesizer:
        """A ``Synthesizer`` of this generator with ``spec`` and ``guidance`` (``meddtfm sample`` uses it)."""
        return Synthesizer(self.net, self.meta, spec, guidance)

    def sample(self, seeds: Sequence[int], masks: Tensor | None, captions: list[str] | None,
               references: Tensor | None, settings: Settings) -> tuple[Tensor, int]:
        few = self.meta.few_step
        cfg = settings.cfg if settings.cfg is not None else few.cfg if few is not None else 2.0
        cfg_caption = cfg if settings.cfg_caption is None else settings.cfg_caption
        try:  # a few-step generator takes only its own steps and distilled guidance (FewStepError)
            spec = sampling_spec(few, "this generator", settings.solver, settings.nfe)
            synth = self.synthesizer(spec, Guidance(cfg, cfg_caption))
        except (ValueError, KeyError) as err:
            raise InputError(f"solver {settings.solver!r} with nfe={settings.nfe}, guidance {cfg:g}: {err}") from err
        if references is None:
            result = synth.noise_based(seeds, masks, captions)
        else:
            if self.needs_teacher and self.meta.teacher is None:
                raise InputError(self.missing_teacher or "reference mode needs the U-KAN teacher: load with a teacher")
            result = synth.reference_guided(references, seeds, masks, captions, t0=settings.t0, start=settings.start,
                                            blend_dilation=settings.blend_dilation)
        return result.x.float().cpu(), result.nfe


class GANModel:
    """A GAN baseline (``meddtfm train --model pix2pixhd | medgan``): ``G(mask, caption)``, the same image for any
    seed."""

    def __init__(self, net: nn.Module, meta: dict, device: torch.device) -> None:
        self.net, self.kind, self.device = net.to(device), meta["model"], device
        self.channel_names, self.class_names = tuple(meta["channel_names"]), tuple(meta["class_names"])
        self.data, self.resolution = meta["data"], meta["data"]["resolution"]
        self.tokenizer = CaptionTokenizer.from_state(meta["tokenizer"]) if meta.get("tokenizer") else None
        self.max_len, self.needs_teacher = (meta.get("text") or {}).get("max_len", 0), False

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], masks: Tensor | None, captions: list[str] | None,
               references: Tensor | None, settings: Settings) -> tuple[Tensor, int]:
        if references is not None:
            raise InputError(f"the {self.kind} baseline translates masks; reference-guided synthesis needs a "
                             "Med-DT-FM model")
        k, r = len(self.class_names), self.resolution
        masks = torch.zeros(len(seeds), k, r, r) if masks is None else masks
        tokens = None
        if self.tokenizer is not None:
            tokens = self.tokenizer.encode(captions or [""] * len(seeds), self.max_len).to(self.device)
        return self.net.generate(masks.float().to(self.device), tokens).clamp(-1, 1).float().cpu(), 0


def teacher_file(weights: Path, recorded: str | None, given: str | Path | None) -> Path | None:
    """The U-KAN teacher to load: ``given``, else the recorded path as is or beside ``weights``; None if absent."""
    if given:
        return Path(given)
    for candidate in ([Path(recorded), weights.parent / recorded] if recorded else []):
        if candidate.is_file():
            return candidate
    return None


def load_model(weights: Path, meta: dict, teacher: str | Path | None, need_teacher: bool | None,
               device: torch.device) -> FlowModel | GANModel:
    """The generator in ``weights`` (config ``meta``). ``need_teacher``: True loads the teacher or fails, None loads
    it when found, False never."""
    model = meta.get("model")
    if model in BASELINES:
        return GANModel(load_baseline(weights)[0], meta, device)
    if model != "meddtfm":
        raise CheckpointError(f"{weights}: holds model {model!r}; expected a `meddtfm train` generator "
                              f"(meddtfm, {', '.join(BASELINES)})")
    found = teacher_file(weights, meta.get("teacher"), teacher)
    load_teacher = bool(need_teacher) or (need_teacher is None and found is not None)
    net, info = load_generator(weights, found or teacher, load_teacher, device)
    missing = None
    if net.ref_channels and info.teacher is None:
        missing = (f"{weights}: reference-guided synthesis needs its U-KAN teacher, and "
                   f"{info.teacher_path or '(none recorded)'} does not exist: pass teacher=FILE (--teacher FILE)")
    return FlowModel(net, info, missing)
