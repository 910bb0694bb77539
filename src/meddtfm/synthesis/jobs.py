"""The jobs of a synthesis run: draw k of each condition, from its own seed, batched through a ``Synthesizer``.

Draw k of condition NAME uses ``sample_seed(run seed, NAME, k)``: the same pixels whatever the batch
size or the other conditions. ``write_images`` stores a sample as PNGs (and NIfTI for a slice of NIfTI
volumes, ``meddtfm.data.nifti_out``); ``write_case`` puts the samples of one case's slices back into its
whole stack of volumes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..data.nifti_out import write_sample, write_volume
from ..flow.sampling import sample_seed
from ..viz import to_rgb
from .conditions import SampleCondition
from .synthesizer import GeneratorMeta, Start, Synthesizer


@dataclass(frozen=True)
class SampleJob:
    """Draw ``index`` of ``condition``, its noise from ``seed``."""

    condition: SampleCondition
    index: int
    seed: int


@dataclass(frozen=True)
class ReferenceEdit:
    """Reference-guided synthesis (Eq. 6): ``start`` (invert | noise) at ``t0``, blending outside the new
    lesion dilated by ``blend_dilation`` px (None: no blending)."""

    start: Start = "invert"
    t0: float = 0.0
    blend_dilation: int | None = None


@dataclass
class BatchResult:
    """A batch of jobs done: samples ``images`` (B, C, R, R) and, in reference mode, ``unblended`` (the same
    samples without blending); ``nfe`` used; what was loaded per job (``loaded``: mask, has_mask;
    ``references``: image [, mask, caption], empty in noise mode)."""

    images: Tensor
    unblended: Tensor | None
    nfe: int
    loaded: list[dict]
    references: list[dict]


def sample_jobs(conditions: Sequence[SampleCondition], per_condition: int, seed: int) -> list[SampleJob]:
    """``per_condition`` draws of every condition, seeded from the run's ``seed`` and the condition's name."""
    return [SampleJob(c, k, sample_seed(seed, c.name, k)) for c in conditions for k in range(per_condition)]


def run_batch(synth: Synthesizer, jobs: Sequence[SampleJob], edit: ReferenceEdit | None = None) -> BatchResult:
    """Noise-based samples of ``jobs`` (Eq. 7), or with ``edit`` reference-guided ones (each job's condition has
    a reference), with their unblended twins."""
    k, r = len(synth.meta.class_names), synth.meta.resolution

    def stack(rows: list[Tensor | None]) -> Tensor:
        return torch.stack([m if m is not None else torch.zeros(k, r, r) for m in rows])

    loaded = [job.condition.load() for job in jobs]
    references = [job.condition.reference() for job in jobs] if edit is not None else []
    seeds, captions = [job.seed for job in jobs], [job.condition.caption for job in jobs]
    masks = None if all(x["mask"] is None for x in loaded) else stack([x["mask"] for x in loaded])
    has_mask = torch.tensor([bool(x["has_mask"]) for x in loaded])
    if edit is None:
        result = synth.noise_based(seeds, masks, captions, has_mask)
        return BatchResult(result.x.cpu(), None, result.nfe, loaded, references)
    result = synth.reference_guided(
        torch.stack([x["image"] for x in references]), seeds, masks, captions, has_mask,
        ref_masks=stack([x.get("mask") for x in references]), ref_captions=[x.get("caption", "") for x in references],
        t0=edit.t0, start=edit.start, blend_dilation=edit.blend_dilation, with_unblended=True)
    return BatchResult(result.x.cpu(), result.unblended.cpu(), result.nfe, loaded, references)


def write_images(image: Tensor, mask: Tensor | None, meta: GeneratorMeta, condition: SampleCondition, out: Path,
                 name: str, nifti: bool = True) -> list[Path]:
    """``out/images/name.png`` (RGB) or ``name_<channel>.png`` per channel in grey, and (``nifti``) the NIfTI
    files of a slice of a NIfTI volume under ``out/nifti``; returns the paths written."""
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    channels = meta.channel_names
    if channels == ("R", "G", "B"):
        tiles = [(folder / f"{name}.png", to_rgb(image))]
    else:
        tiles = [(folder / f"{name}_{ch}.png", to_rgb(image[c:c + 1])[:, :, 0]) for c, ch in enumerate(channels)]
    for path, pixels in tiles:
        Image.fromarray(pixels).save(path)
    files = [path for path, _ in tiles]
    if nifti and condition.nifti is not None:
        files += write_sample(image, mask, condition.nifti[0], meta.channel_names, meta.class_names,
                              condition.nifti[1], out / "nifti", name)
    return files


def write_case(samples: Sequence[tuple[SampleCondition, Tensor, Tensor | None]], meta: GeneratorMeta,
               percentiles: Sequence[float], folder: Path, name: str) -> list[Path]:
    """One case's whole stack (``data.nifti_out.write_volume``) with ``samples`` (condition, image ``C x R x R``,
    the mask it was drawn for ``K x R x R`` or None), each a slice of that case's volumes, inserted."""
    sources = {(c.nifti[0] if c.nifti else None, c.mask_file) for c, _, _ in samples}
    if len(sources) != 1 or None in next(iter(sources)):
        raise ValueError(f"{name}: the samples are not slices of one case's NIfTI volumes")
    paths, mask_file = next(iter(sources))
    slices = {c.nifti[1]: (image, mask) for c, image, mask in samples}
    return write_volume(slices, paths, mask_file, meta.channel_names, meta.class_names, percentiles, folder, name)


__all__ = ["BatchResult", "ReferenceEdit", "SampleJob", "run_batch", "sample_jobs", "write_case", "write_images"]
