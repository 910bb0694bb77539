"""``MedDTFMPipeline``: load any trained meddtfm generator, sample it in one call, save it as one folder.

``from_pretrained`` takes a weights file (``final.safetensors`` / ``best.safetensors`` of ``meddtfm train``, any
``--model``), a run folder holding one (final preferred) or a folder written by ``save_pretrained``. A
Med-DT-FM model's U-KAN teacher (reference mode) is ``teacher=``, else the path recorded at training time, as
is or beside the weights. Noise of sample i comes from ``seed + i`` (or the i-th of a list of seeds), through
``meddtfm.flow.sampling.seeded_noise`` as in ``meddtfm sample``: same seed and settings, same pixels.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_weights, save_weights, weights_config
from ..files import atomic_write_text
from ..flow.sampling import Guidance, SolverSpec
from ..synthesis import ConditionError, GeneratorMeta, Start, Synthesizer
from .card import card_facts, model_card
from .inputs import ImageLike, InputError, MaskLike, as_masks, as_references
from .models import FlowModel, GANModel, Settings, load_model
from .output import PipelineOutput

CONFIG = "config.json"  # a saved pipeline's index: which files, what the model takes
RUN_WEIGHTS = ("final.safetensors", "best.safetensors")


def locate(path: str | Path) -> tuple[Path, dict | None]:
    """The weights file that ``path`` names and, for a saved pipeline folder, its ``config.json``."""
    path = Path(path)
    if path.is_dir():
        if (path / CONFIG).is_file():
            saved = json.loads((path / CONFIG).read_text())
            return path / saved["generator"], saved
        for name in RUN_WEIGHTS:
            if (path / name).is_file():
                return path / name, None
        raise CheckpointError(f"{path}: neither a saved pipeline ({CONFIG}) nor a training run "
                              f"({' or '.join(RUN_WEIGHTS)})")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file or folder")
    return path, None


class MedDTFMPipeline:
    """One trained generator (Med-DT-FM, pix2pixHD or MedGAN) behind ``pipe(masks=..., captions=..., ...)``."""

    def __init__(self, model: FlowModel | GANModel, weights: Path, facts: dict) -> None:
        self.model, self.weights, self.facts = model, weights, facts

    @classmethod
    def from_pretrained(cls, path: str | Path, teacher: str | Path | None = None, device: str | torch.device = "cpu",
                        need_teacher: bool | None = None) -> MedDTFMPipeline:
        """Load ``path`` (module doc) on ``device``. ``need_teacher``: True fails without the teacher, None (default)
        loads it when found (reference mode then says what is missing), False skips it."""
        weights, saved = locate(path)
        meta = weights_config(weights)
        model = load_model(weights, meta, teacher, need_teacher, torch.device(device))
        facts = saved["card"] if saved else card_facts(weights, meta)
        return cls(model, weights, facts)

    # -- what the model takes --------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``meddtfm``, ``pix2pixhd`` or ``medgan``."""
        return self.model.kind

    @property
    def resolution(self) -> int:
        """R: the model makes ``R x R`` images."""
        return self.model.resolution

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.model.channel_names

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    @property
    def uses_captions(self) -> bool:
        return self.model.tokenizer is not None

    @property
    def supports_reference(self) -> bool:
        """Reference-guided synthesis is possible: a flow whose teacher (if it needs one) is loaded."""
        return isinstance(self.model, FlowModel) and self.model.missing_teacher is None

    @property
    def meta(self) -> GeneratorMeta:
        """A Med-DT-FM model's ``GeneratorMeta`` (``meddtfm.synthesis``)."""
        return self._flow().meta

    def synthesizer(self, spec: SolverSpec = SolverSpec(), guidance: Guidance = Guidance()) -> Synthesizer:
        """A ``Synthesizer`` of a Med-DT-FM model with ``spec`` and ``guidance``: what ``meddtfm sample`` runs."""
        return self._flow().synthesizer(spec, guidance)

    def _flow(self) -> FlowModel:
        if not isinstance(self.model, FlowModel):
            raise CheckpointError(f"{self.weights}: a {self.kind} baseline, not a Med-DT-FM flow (sample it with "
                                  "MedDTFMPipeline's pipe(masks=...) or with meddtfm evaluate)")
        return self.model

    # -- sampling ---------------------------------------------------------------------------------
    def __call__(self, masks: MaskLike | Sequence[MaskLike] | None = None, captions: str | Sequence[str] | None = None,
                 reference: ImageLike | Sequence[ImageLike] | None = None, *, nfe: int | None = None,
                 cfg: float | None = None, seed: int | Sequence[int] = 0, cfg_caption: float | None = None,
                 solver: str = "auto", resize: bool = False, num_images: int | None = None, t0: float = 0.0,
                 start: Start = "invert", blend_dilation: int | None = None) -> PipelineOutput:
        """B images ``(B, C, R, R)``: noise-based (Eq. 7), or with ``reference`` reference-guided (Eq. 6: the
        lesion of ``masks`` put into the reference's anatomy, inverted as a healthy slice to ``t0``).

        ``masks`` and ``reference`` take the forms of ``meddtfm.pipeline.inputs``; one caption, mask or
        reference is used for every sample. B is the largest count given (``num_images``, masks, captions,
        references, seeds), 1 by default. ``resize``: masks and references of another size are resized.
        ``solver="auto"``, ``nfe=None`` and ``cfg=None``: Heun at NFE 8 with guidance 2 for a flow; for a
        few-step generator (``meddtfm distill-steps``) its own Euler steps (the fewest it was trained for) and
        the guidance distilled into it, the only settings it takes.
        """
        r = self.resolution
        mask_t = None if masks is None else as_masks(masks, self.class_names, r, resize)
        ref_t = None if reference is None else as_references(reference, self.channel_names, r, resize)
        caption_list = [captions] if isinstance(captions, str) else None if captions is None else list(captions)
        seeds = [seed] if isinstance(seed, int) else list(seed)
        counts = {"masks": 0 if mask_t is None else len(mask_t), "captions": len(caption_list or []),
                  "references": 0 if ref_t is None else len(ref_t), "seeds": len(seeds), "num_images": num_images or 0}
        b = max(1, *counts.values())
        bad = {k: n for k, n in counts.items() if n not in (0, 1, b)}
        if bad:
            raise InputError(f"{b} samples asked for, but got " + ", ".join(f"{n} {k}" for k, n in bad.items()))
        if isinstance(seed, int):
            seeds = [seed + i for i in range(b)]
        mask_t = None if mask_t is None else mask_t.expand(b, -1, -1, -1)
        ref_t = None if ref_t is None else ref_t.expand(b, -1, -1, -1)
        if caption_list is not None:
            if not self.uses_captions and any(caption_list):
                raise InputError(f"this {self.kind} model was trained without captions; got {caption_list[0]!r}")
            caption_list = caption_list * b if len(caption_list) == 1 else caption_list
        settings = Settings(nfe, cfg, cfg_caption, solver, t0, start, blend_dilation)
        try:
            images, used = self.model.sample(seeds, mask_t, caption_list, ref_t, settings)
        except ConditionError as err:
            raise InputError(str(err)) from err
        return PipelineOutput(images, mask_t, ref_t, seeds, used, self.channel_names, self.class_names)

    # -- saving -----------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``folder``: ``generator.safetensors``, ``teacher.safetensors`` (a flow with a reference path,
        when its teacher is loaded), ``config.json`` and ``model_card.md``; ``from_pretrained(folder)`` reads it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state, meta = load_weights(self.weights)
        teacher = self.model.meta.teacher_path if self.supports_reference and self.model.needs_teacher else None
        if isinstance(self.model, FlowModel):
            meta["teacher"] = "teacher.safetensors" if teacher else None
        save_weights(state, folder / "generator.safetensors", meta)
        if teacher:
            shutil.copyfile(teacher, folder / "teacher.safetensors")
        files = {"the generator's weights and config": "generator.safetensors",
                 "the frozen U-KAN teacher of reference mode": "teacher.safetensors" if teacher else None}
        index = {"format": "meddtfm-pipeline", "model": self.kind, "generator": "generator.safetensors",
                 "teacher": "teacher.safetensors" if teacher else None, "resolution": self.resolution,
                 "channel_names": list(self.channel_names), "class_names": list(self.class_names),
                 "captions": self.uses_captions, "reference": self.supports_reference, "card": self.facts}
        atomic_write_text(folder / CONFIG, json.dumps(index, indent=2) + "\n")
        atomic_write_text(folder / "model_card.md", model_card(self.facts, files))
        return folder

    def __repr__(self) -> str:
        return (f"MedDTFMPipeline({self.kind}, {self.weights}, {len(self.channel_names)} x {self.resolution}^2, "
                f"classes {', '.join(self.class_names)}, captions {self.uses_captions}, "
                f"reference {self.supports_reference})")


Pipeline = MedDTFMPipeline

__all__ = ["CONFIG", "InputError", "MedDTFMPipeline", "Pipeline", "PipelineOutput", "locate"]
