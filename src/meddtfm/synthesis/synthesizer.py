"""The generator side of synthesis (paper §2.3): load a trained Med-DT-FM generator, check the inputs, sample.

``load_generator`` rebuilds the ``VelocityNet`` that ``meddtfm train`` saved (``final.safetensors`` /
``best.safetensors``, EMA weights, ``MedDTFMTask.export_config`` as metadata) with its caption
tokenizer and, for reference-guided synthesis, its frozen U-KAN teacher. ``Synthesizer`` turns masks,
captions, references and seeds into images with the math of ``meddtfm.flow.sampling``; every input
is checked against the model before any network runs.

Shapes: masks ``(B, K, R, R)`` one-hot (binary, the model's K classes and resolution R); images and
references ``(B, C, R, R)`` in [-1, 1]; a caption "" means "no caption" (the learned null, as in training).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from ..checkpoint import CheckpointError
from ..config import DataConfig
from ..data.errors import BadSampleError
from ..data.io import binary_mask, read_image
from ..data.transforms import resize_pair
from ..flow.few_step import DurationBound, FewStep, student_of
from ..flow.sampling import (
    ConditionInputs,
    Guidance,
    ReferenceResult,
    SolverSpec,
    generate,
    lesion_region,
    reference_guided,
    seeded_noise,
)
from ..flow.solver import SolverResult
from ..models.generator import VelocityNet, load_velocity_net
from ..models.segmenters import load_teacher
from ..models.text import CaptionTokenizer
from ..models.ukan import FrozenTeacher
from ..training.split_check import check_same_split
from .few_step import check_few_step

__all__ = ["ConditionError", "GeneratorMeta", "Start", "Synthesizer", "load_generator", "one_hot_mask",
           "read_mask_array", "read_mask_file", "read_reference_file", "training_data_config"]

Start = Literal["invert", "noise"]


class ConditionError(ValueError):
    """A mask, caption or reference that does not fit the generator."""


@dataclass
class GeneratorMeta:
    """What sampling needs besides the velocity network.

    Attributes:
        path: the weights file.
        channel_names, class_names: image channels (C) and mask classes (K) the model was trained on.
        resolution: R, the training ``data.resolution``.
        tokenizer: the caption vocabulary, or None (trained without captions).
        max_caption_len: token length of the text encoder.
        data: the training ``DataConfig`` as a dict (to rebuild its dataset).
        step: training step of the weights.
        teacher: the frozen U-KAN ``EM`` (Eq. 2), when loaded; ``teacher_path`` its file.
        few_step: for a ``distill-steps`` generator, its method, trained step counts and distilled guidance.
    """

    path: Path
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    resolution: int
    tokenizer: CaptionTokenizer | None
    max_caption_len: int
    data: dict
    step: int
    teacher: FrozenTeacher | None = None
    teacher_path: str | None = None
    few_step: FewStep | None = None


def load_generator(path: str | Path, teacher: str | Path | None = None, need_teacher: bool = True,
                   device: str | torch.device = "cpu") -> tuple[VelocityNet, GeneratorMeta]:
    """The generator in ``path`` (eval mode, on ``device``) and its ``GeneratorMeta``.

    For a model with a reference path (``ref_channels > 0``) and ``need_teacher``, the teacher is
    loaded from ``teacher`` if given, else from the path recorded at training time.
    """
    path = Path(path)
    net, meta = load_velocity_net(path)
    try:
        info = GeneratorMeta(path, tuple(meta["channel_names"]), tuple(meta["class_names"]), meta["data"]["resolution"],
                             CaptionTokenizer.from_state(meta["tokenizer"]) if meta["tokenizer"] else None,
                             meta["generator"]["max_caption_len"], meta["data"], meta.get("step", -1))
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: metadata lacks what sampling needs ({err!r})") from err
    info.teacher_path = str(teacher) if teacher else meta.get("teacher")
    info.few_step = FewStep.from_meta(meta)
    if need_teacher and net.ref_channels:
        info.teacher = _teacher(path, info, net.ref_channels).to(device)
    return net.to(device).eval(), info


def _teacher(path: Path, info: GeneratorMeta, ref_channels: int) -> FrozenTeacher:
    where = info.teacher_path
    if not where or not Path(where).is_file():
        raise CheckpointError(f"{path}: its U-KAN teacher {where or '(none recorded)'} does not exist (moved?); "
                              "pass the pretrain-encoder checkpoint with --teacher FILE")
    teacher, meta = load_teacher(where)
    if teacher.feature_channels[0] != ref_channels or tuple(meta["channel_names"]) != info.channel_names:
        raise CheckpointError(f"{where}: this teacher (E_0 with {teacher.feature_channels[0]} channels, images "
                              f"{meta['channel_names']}) is not the one {path} was trained with "
                              f"({ref_channels} channels, images {list(info.channel_names)})")
    return teacher


def one_hot_mask(array: np.ndarray, classes: Sequence[str], source: str | Path, image: bool = False) -> np.ndarray:
    """A condition mask as binary one-hot ``(K, H, W)`` float32, or ``BadSampleError`` naming ``source``.

    ``array``: one-hot ``K x H x W`` or an ``H x W`` label map, value i = the i-th class of ``classes``
    (0 is background); with BraTS's classes (NCR, ED, ET) 4 also reads as ET; an ``image`` with one
    class may be 0/255.
    """
    k = len(classes)
    if array.ndim == 2 and image and k == 1:
        array = binary_mask(array, source)[None]
    elif array.ndim == 2:
        labels = np.where(array == 4, 3, array) if tuple(classes[:3]) == ("NCR", "ED", "ET") else array
        if labels.min() < 0 or labels.max() > k or (labels != np.round(labels)).any():
            raise BadSampleError(source, f"label values {np.unique(array)[:8].tolist()} are not 0..{k} "
                                         f"({', '.join(classes)})")
        array = np.stack([labels == i + 1 for i in range(k)])
    if array.ndim != 3 or array.shape[0] != k:
        raise BadSampleError(source, f"mask of shape {array.shape}: expected binary {k} x H x W over "
                                     f"{', '.join(classes)}")
    if not np.isin(array, (0, 1)).all():
        values = np.unique(array)
        raise BadSampleError(source, f"mask is not binary: values {values[:6].tolist()}"
                                     f"{'...' if values.size > 6 else ''} (threshold it, e.g. mask > 0.5)")
    return array.astype(np.float32)


def read_mask_array(path: str | Path) -> tuple[np.ndarray, bool]:
    """The array of a mask file and whether it is an image: ``.npy`` as stored, an image's first channel."""
    path = Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise BadSampleError(path, "file does not exist")
        return np.load(path), False
    return read_image(path)[:, :, 0], True


def read_mask_file(path: str | Path, classes: Sequence[str], size: int) -> Tensor:
    """A condition mask file as one-hot ``(K, size, size)``, square-cropped and resized (nearest) as the loaders do.

    ``.npy``: one-hot ``K x H x W`` or an ``H x W`` label map; an image: a label map (``one_hot_mask``).
    """
    array, image = read_mask_array(path)
    array = one_hot_mask(array, classes, path, image)
    return resize_pair(np.zeros((1, *array.shape[1:]), np.float32), array, size)[1]


def read_reference_file(path: str | Path, channels: int, size: int) -> Tensor:
    """A reference image file as ``(C, size, size)`` in [-1, 1], square-cropped and resized as the loaders do.

    ``.npy``: ``C x H x W`` already in [-1, 1] (any C); an image (PNG, JPEG, TIFF): 8-bit, 1 or 3 channels.
    """
    path = Path(path)
    image = np.load(path) if path.suffix == ".npy" else read_image(path).transpose(2, 0, 1)[:channels] / 127.5 - 1
    if image.ndim != 3 or image.shape[0] != channels:
        raise BadSampleError(path, f"reference of shape {image.shape}, expected {channels} x H x W")
    return resize_pair(image.astype(np.float32), np.zeros((1, *image.shape[1:]), np.float32), size)[0]


class Synthesizer:
    """Noise-based (Eq. 7) and reference-guided (Eq. 6) synthesis with one generator, solver and guidance.

    A few-step generator (``meta.few_step``) takes only the NFE and guidance it was trained for
    (``few_step.check_few_step``, checked here) and samples in ``spec.nfe`` Euler steps without guidance
    passes (``flow.few_step``); its reference mode noises the reference to ``t0`` and finishes in those k steps.
    """

    def __init__(self, net: VelocityNet, meta: GeneratorMeta, spec: SolverSpec = SolverSpec(),
                 guidance: Guidance = Guidance()) -> None:
        if meta.few_step is not None:
            check_few_step(meta.few_step, meta.path, spec, guidance, meta.tokenizer is not None)
        self.net, self.meta, self.spec, self.guidance = net, meta, spec, guidance
        self.device = next(net.parameters()).device

    def _sampler(self, t0: float = 0.0) -> tuple[VelocityNet | DurationBound, Guidance]:
        """The network each step evaluates and the guidance it gets: a few-step model's own, unguided (class doc)."""
        if self.meta.few_step is None:
            return self.net, self.guidance
        return student_of(self.net, self.spec.nfe, t0), Guidance()

    # -- checks (no network runs) -----------------------------------------------------------------
    def check_masks(self, masks: Tensor, name: str = "masks") -> Tensor:
        """``masks`` as float on the model's device, or ``ConditionError`` if they do not fit the model."""
        k, r = len(self.meta.class_names), self.meta.resolution
        if masks.ndim != 4 or masks.shape[1] != k:
            raise ConditionError(f"{name} must be (B, K={k}, {r}, {r}) one-hot over {list(self.meta.class_names)}, "
                                 f"got shape {tuple(masks.shape)}")
        if tuple(masks.shape[-2:]) != (r, r):
            raise ConditionError(f"{name} are {tuple(masks.shape[-2:])}; this model was trained at {r} x {r} "
                                 "(data.resolution): resize them first")
        masks = masks.float()
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ConditionError(f"{name} must be binary (0/1 per class); got values {masks.unique()[:6].tolist()}")
        return masks.to(self.device)

    def check_images(self, images: Tensor, name: str = "references") -> Tensor:
        """``images`` (B, C, R, R) in [-1, 1] on the model's device, or ``ConditionError``."""
        c, r = len(self.meta.channel_names), self.meta.resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (c, r, r):
            raise ConditionError(f"{name} must be (B, {c}, {r}, {r}) ({', '.join(self.meta.channel_names)}), "
                                 f"got {tuple(images.shape)}")
        images = images.float()
        if not bool(torch.isfinite(images).all()) or images.abs().max() > 1 + 1e-3:
            raise ConditionError(f"{name} must be finite and scaled to [-1, 1]")
        return images.to(self.device)

    def condition(self, batch_size: int, masks: Tensor | None = None, captions: Sequence[str] | None = None,
                  has_mask: Tensor | None = None, name: str = "masks") -> ConditionInputs:
        """Checked, tokenised condition of ``batch_size`` samples; ``has_mask`` (B,) False -> that mask is null."""
        if masks is not None:
            masks = self.check_masks(masks, name)
            if masks.shape[0] != batch_size:
                raise ConditionError(f"{name}: {masks.shape[0]} masks for {batch_size} samples")
        tokens = drop_caption = None
        if captions is not None and any(captions):
            if len(captions) != batch_size:
                raise ConditionError(f"{len(captions)} captions for {batch_size} samples")
            if self.meta.tokenizer is None:
                first = next(c for c in captions if c)
                raise ConditionError(f"this generator was trained without captions; got {first!r}")
            tokens = self.meta.tokenizer.encode(list(captions), self.meta.max_caption_len).to(self.device)
            drop_caption = torch.tensor([not c for c in captions], device=self.device)
        drop_mask = None if masks is None or has_mask is None else ~has_mask.bool().to(self.device)
        return ConditionInputs(batch_size, masks, tokens, drop_mask, drop_caption)

    # -- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def noise_based(self, seeds: Sequence[int], masks: Tensor | None = None, captions: Sequence[str] | None = None,
                    has_mask: Tensor | None = None) -> SolverResult:
        """Eq. 7: one image per seed, ``x0`` drawn from that seed; ``.x`` is ``(B, C, R, R)`` clamped to [-1, 1]."""
        cond = self.condition(len(seeds), masks, captions, has_mask)
        r = self.meta.resolution
        x0 = seeded_noise(seeds, (len(self.meta.channel_names), r, r), self.device)
        net, guidance = self._sampler()
        result = generate(net, x0, cond, self.spec, guidance)
        return SolverResult(result.x.clamp(-1, 1), result.nfe, result.times)

    @torch.no_grad()
    def reference_guided(self, references: Tensor, seeds: Sequence[int], masks: Tensor | None = None,
                         captions: Sequence[str] | None = None, has_mask: Tensor | None = None, *,
                         ref_masks: Tensor | None = None, ref_captions: Sequence[str] | None = None,
                         t0: float = 0.0, start: Start = "invert", blend_dilation: int | None = None,
                         with_unblended: bool = False) -> ReferenceResult:
        """Eq. 6: the lesion of ``masks`` / ``captions`` in the anatomy of ``references`` (B, C, R, R).

        ``start``: ``invert`` the reference under its own condition (``ref_masks``, default all-zero:
        "no lesion", the true condition of a healthy slice; ``ref_captions``, default none) to ``t0``,
        or ``noise`` it to ``t0`` with the seeds' noise. ``blend_dilation`` (px) keeps the reference
        outside the new mask's lesion dilated by that much (needs ``masks``); None: no blending. A
        generator without a reference path (``flow.reference=false``) edits by inversion / noising alone.
        ``with_unblended``: ``.unblended`` is the output without blending (``ReferenceResult``), clamped too;
        with blending it costs one more forward integration.
        """
        if self.net.ref_channels and self.meta.teacher is None:
            raise ConditionError("this generator seeds bridge 0 with the teacher's E_0 of the reference: load it with "
                                 "load_generator(..., need_teacher=True)")
        if start not in ("invert", "noise") or not 0.0 <= t0 < 1.0:
            raise ConditionError(f"need start 'invert' or 'noise' and 0 <= t0 < 1, got {start!r} and {t0}")
        if blend_dilation is not None and masks is None:
            raise ConditionError("blending keeps the reference outside the new lesion: it needs masks")
        if self.meta.few_step is not None and start != "noise":
            raise ConditionError(f"{self.meta.few_step.describe(self.meta.path)}: its reference mode noises the "
                                 "reference to t0 and finishes in k steps (start 'noise'); inverting needs the base "
                                 "flow")
        b = len(seeds)
        references = self.check_images(references)
        cond = self.condition(b, masks, captions, has_mask)
        k, r = len(self.meta.class_names), self.meta.resolution
        ref_masks = torch.zeros(b, k, r, r) if ref_masks is None else ref_masks
        ref_cond = self.condition(b, ref_masks, ref_captions, name="reference masks")
        if references.shape[0] != b:
            raise ConditionError(f"{references.shape[0]} references for {b} samples")
        f_ref = self.meta.teacher(references)[0] if self.net.ref_channels else None
        noise = seeded_noise(seeds, references.shape[1:], self.device) if start == "noise" else None
        region = None if blend_dilation is None else lesion_region(cond.mask, blend_dilation)
        net, guidance = self._sampler(t0)
        result = reference_guided(net, references, cond, ref_cond, self.spec, guidance, f_ref,
                                  t0=t0, noise=noise, region=region, with_unblended=with_unblended)
        unblended = None if result.unblended is None else result.unblended.clamp(-1, 1)
        return ReferenceResult(result.x.clamp(-1, 1), result.nfe, result.times, unblended=unblended)


def training_data_config(meta_data: dict, config_path: str | None, overrides: Sequence[str],
                         checkpoint: str | Path = "the generator checkpoint") -> DataConfig:
    """A checkpoint's training data config <- the ``data`` of ``config_path`` <- ``data.*`` overrides; no augmentation.

    ``meddtfm sample`` and ``meddtfm evaluate`` both read their conditions through it, so they see the same split:
    ``config_path`` or ``overrides`` that change a split key (``SPLIT_KEYS``) of the recorded ``meta_data``
    raise ``SplitMismatchError``. Other keys may change (``data.root``: the data moved).
    """
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), meta_data)
    if config_path:
        merged = OmegaConf.merge(merged, OmegaConf.load(config_path).get("data") or {})
    merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([o[5:] for o in overrides if o.startswith("data.")]))
    data = dataclasses.replace(OmegaConf.to_object(merged), augment=False)
    check_same_split(meta_data, dataclasses.asdict(data), f"{checkpoint} (its training data)", "--config / --set",
                     hint="The split is the one the generator was trained with; drop those data keys")
    return data
