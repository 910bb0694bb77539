"""``augment``: draw synthetic images for varied real masks, chunk by chunk, into an ``AugmentFolder``.

Candidate i is named ``syn{i:06d}``; its seed is ``sample_seed(seed, name)``, which fixes its noise (inside
the generator), its mask variation and its reference slice. Its mask is the variation of the real mask
``sources[i mod N]``, so ``count = N`` uses each real mask once and ``2N`` twice, each time varied anew.
With ``min_dice`` the independent segmenter segments every candidate and the ones whose Dice against
their own mask (mean over the classes the mask has) is below it are dropped; candidates are drawn until
``count`` are kept or ``max_candidates`` were tried.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..evaluation.consistency import predict_kept
from ..flow.sampling import sample_seed
from .folder import AugmentFolder
from .sources import HealthyReferences, Source, anatomy
from .variation import MaskVariation

Generate = Callable[[dict, int], Tensor]
ROUNDS_WITH_FILTER = 4  # default max_candidates = 4 x count when a filter drops images


class AugmentError(RuntimeError):
    """Fewer images than asked for passed the quality filter within the candidate budget."""


@dataclass(frozen=True)
class AugmentSpec:
    """What to draw: ``count`` kept images, in chunks (batches) of ``chunk_size``."""

    count: int
    mode: str = "noise"  # noise | reference
    seed: int = 0
    chunk_size: int = 16
    variation: MaskVariation = field(default_factory=MaskVariation)
    min_dice: float | None = None
    max_candidates: int = 0  # 0: count, or ROUNDS_WITH_FILTER x count with min_dice

    @property
    def candidates(self) -> int:
        return self.max_candidates or self.count * (ROUNDS_WITH_FILTER if self.min_dice is not None else 1)


@dataclass
class AugmentSummary:
    """``written`` images kept in all, ``dropped`` by the filter, ``drawn`` in this call in ``seconds``."""

    written: int
    dropped: int
    drawn: int
    seconds: float

    @property
    def images_per_minute(self) -> float:
        return 60.0 * self.drawn / self.seconds if self.seconds > 0 else float("nan")


def lesion_dice(segmenter: nn.Module, images: Tensor, masks: Tensor) -> list[float]:
    """Per image, the segmenter's Dice against ``masks`` (B, K, S, S), mean over the classes the mask has."""
    pred, target = predict_kept(segmenter, images, masks, None)
    pred, target = pred.float().cpu(), (target > 0.5).float().cpu()
    inter = (pred * target).flatten(2).sum(-1)
    total = (pred + target).flatten(2).sum(-1)
    present = target.flatten(2).any(-1)
    dice = torch.where(present, 2 * inter / total.clamp_min(1), torch.nan)
    return [float(d) for d in dice.nanmean(1)]


def _candidates(indices: Sequence[int], spec: AugmentSpec, sources: Sequence[Source],
                references: HealthyReferences | None) -> tuple[dict, list[dict]]:
    """The batch ``generate`` takes for candidates ``indices`` and their manifest rows (without results)."""
    names, masks, captions, refs, ref_masks, rows = [], [], [], [], [], []
    for i in indices:
        name = f"syn{i:06d}"
        seed = sample_seed(spec.seed, name)
        source = sources[i % len(sources)]
        loaded = source.load()
        region, reference = loaded["region"], ""
        if references is not None:
            reference, image, ref_mask = references.pick(source.subject, seed)
            region = anatomy(image)
            refs.append(image)
            ref_masks.append(ref_mask)
        mask, varied = spec.variation.apply(loaded["mask"], region, seed)
        names.append(name)
        masks.append(mask)
        captions.append(source.caption)
        rows.append({"name": name, "source": source.name, "subject": source.subject, "caption": source.caption,
                     "reference": reference, "seed": seed, "variation": str(spec.variation),
                     "varied": "yes" if varied else "no"})
    batch = {"sample_id": names, "mask": torch.stack(masks), "has_mask": torch.ones(len(names), dtype=torch.bool),
             "caption": captions}
    if references is not None:
        batch.update(reference=torch.stack(refs), reference_mask=torch.stack(ref_masks))
    return batch, rows


def augment(generate: Generate, settings: dict, sources: Sequence[Source], spec: AugmentSpec,
            folder: AugmentFolder, references: HealthyReferences | None = None,
            segmenter: nn.Module | None = None) -> AugmentSummary:
    """Fill ``folder`` with ``spec.count`` kept images (reusing its finished chunks); ``settings`` go to every
    manifest row (model, mode, nfe, solver, cfg, checkpoint)."""
    if (spec.min_dice is None) != (segmenter is None):
        raise ValueError("the quality filter needs both a minimum Dice and the evaluation segmenter")
    if spec.mode == "reference" and references is None:
        raise ValueError("reference mode needs the healthy slices to insert the lesions into")
    size, total = spec.chunk_size, spec.candidates
    rows = folder.rows()
    done = {c for c in {int(r["chunk"]) for r in rows}
            if sum(int(r["chunk"]) == c for r in rows) == min(size, total - c * size)}
    if len(done) < len({r["chunk"] for r in rows}):  # a chunk cut short while its rows were written: redraw it
        rows = [r for r in rows if int(r["chunk"]) in done]
        folder.rewrite(rows)
    kept = sum(r["kept"] == "yes" for r in rows)
    drawn, seconds = 0, 0.0
    with tqdm(total=spec.count, initial=min(kept, spec.count), desc="augment", unit="img", dynamic_ncols=True) as bar:
        for chunk in range((total + size - 1) // size):
            if kept >= spec.count:
                break
            if chunk in done:
                continue
            start = time.perf_counter()
            batch, new = _candidates(range(chunk * size, min(total, (chunk + 1) * size)), spec, sources, references)
            with torch.no_grad():
                images = generate(batch, spec.seed).detach().float().cpu()
                dice = lesion_dice(segmenter, images, batch["mask"]) if segmenter is not None else [None] * len(new)
            written: list[Tensor | None] = []
            for row, image, d in zip(new, images, dice):
                passed = d is None or d >= spec.min_dice
                row.update(settings, chunk=chunk, dice="" if d is None else f"{d:.4f}",
                           kept="yes" if passed and kept < spec.count else ("dropped" if not passed else "surplus"))
                kept += row["kept"] == "yes"
                written.append(image if row["kept"] == "yes" else None)
            folder.write_chunk(new, written, list(batch["mask"]))
            rows += new
            drawn += len(new)
            seconds += time.perf_counter() - start
            bar.update(min(kept, spec.count) - bar.n)
    folder.write_captions(rows)
    dropped = sum(r["kept"] == "dropped" for r in rows)
    if kept < spec.count:
        raise AugmentError(f"only {kept} of {spec.count} images passed the quality filter (Dice >= {spec.min_dice}) "
                           f"in {total} candidates ({dropped} dropped); lower the minimum Dice or allow more "
                           f"candidates (the {folder.out} folder keeps what was drawn)")
    return AugmentSummary(kept, dropped, drawn, seconds)
