"""Several generators scored identically on one dataset: the same split, masks, seeds, segmenter and metrics.

It is ``meddtfm evaluate``'s mode B (``generation.load_generate`` -> ``generated_batches`` ->
``runner.Evaluation``) with one real set for all generators, plus side-by-side images of the
generators for the same masks (Table 1's Fig. 2).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset, default_collate
from tqdm import tqdm

from ..checkpoint import CheckpointError
from ..config import DataConfig
from ..data import build_dataset
from ..data.base import MedicalDataset
from ..evaluation.consistency import load_eval_segmenter
from ..evaluation.distribution import RGB
from ..evaluation.generation import generated_batches, load_generate
from ..evaluation.inception import load_inception
from ..evaluation.runner import Evaluation, Setup, needs_segmenter
from ..viz import mask_to_rgb, to_rgb
from .columns import sequence_label
from .figures import GridRow
from .presets import EvalSpec

Integration = tuple[int, str]  # (NFE, solver) of a flow; a few-step model's solver is "auto"


def mri_sequences(channel_names: Sequence[str]) -> tuple[str, ...]:
    """The channels of a multi-channel MRI image, each scored and shown on its own; none for 1 channel or RGB."""
    names = tuple(channel_names)
    return names if len(names) > 1 and names != RGB else ()


@dataclass
class Scorer:
    """Where and with what to score: the split's samples, the metrics and the networks they need."""

    dataset: MedicalDataset
    spec: EvalSpec
    metrics: tuple[str, ...]
    device: torch.device
    workdir: Path  # scratch for FRD's PNGs
    segmenter: str | None = None
    inception: str | None = None

    @classmethod
    def on_split(cls, data: DataConfig, split: str, seed: int, **kwargs) -> Scorer:
        """The ``split`` of ``data`` as the generators' training run drew it (``seed``), without augmentation."""
        return cls(build_dataset(dataclasses.replace(data, augment=False), split, seed), **kwargs)

    def loader(self, limit: int) -> DataLoader:
        dataset = Subset(self.dataset, range(min(limit, len(self.dataset)))) if limit > 0 else self.dataset
        return DataLoader(dataset, batch_size=self.spec.batch_size, shuffle=False, num_workers=0)

    def evaluation(self, grid_dir: Path | None = None) -> Evaluation:
        d = self.dataset
        seg = (load_eval_segmenter(self.segmenter, d.num_channels, d.class_names, d.channel_names,
                                   data=dataclasses.asdict(d.cfg))
               .to(self.device)
               if needs_segmenter(self.metrics) else None)
        net = load_inception(self.inception).to(self.device) if "fid" in self.metrics else None
        return Evaluation(Setup(self.metrics, d.channel_names, d.class_names, self.workdir, seg, net,
                                self.spec.frd_version, grid_dir=grid_dir))

    def generator(self, path: Path, sampler: Integration | None = None):
        """``generate(batch, seed)`` of a weights file (noise-based), checked against the dataset; ``sampler``
        (NFE, solver) replaces the spec's."""
        s = self.spec
        nfe, solver = sampler or (s.nfe, s.solver)
        generate, info = load_generate(path, "noise", self.device, nfe=nfe, solver=solver, cfg_mask=s.cfg)
        if tuple(info["channel_names"]) != tuple(self.dataset.channel_names):
            raise CheckpointError(f"{path} makes channels {info['channel_names']}, the data has "
                                  f"{list(self.dataset.channel_names)}")
        return generate, info


@dataclass
class Comparison:
    """``runs[method][seedN]`` -> metric -> value, the segmenter on the real images, notes, and how many
    test samples were scored (``pairs`` of them with a real image for the paired metrics)."""

    runs: dict[str, dict[str, dict[str, float]]]
    reference: dict[str, float]
    notes: list[str]
    samples: int
    pairs: int


def compare(scorer: Scorer, weights: dict[str, Path], grid_dir: Path | None = None,
            seeds: Mapping[str, Sequence[int]] | None = None,
            samplers: Mapping[str, Integration] | None = None) -> Comparison:
    """Every generator in ``weights`` (method -> weights file) over the same samples, each with the sampling
    seeds ``seeds[method]`` (default: the spec's) and the sampler ``samplers[method]`` (default: the spec's)."""
    evaluation, loader = scorer.evaluation(grid_dir), scorer.loader(scorer.spec.limit)
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for i, (method, path) in enumerate(weights.items()):
        generate, info = scorer.generator(path, (samplers or {}).get(method))
        runs[method] = {}
        method_seeds = scorer.spec.seeds if seeds is None else seeds[method]
        for j, seed in enumerate(method_seeds):
            on_real = (lambda b: evaluation.add_real(b["image"], b["mask"], b["has_mask"])) if i == j == 0 else None
            batches = tqdm(generated_batches(loader, generate, seed, "noise", on_real, scorer.spec.average_of,
                                             bool(info.get("deterministic"))),
                           total=len(loader), desc=f"evaluate {method} seed {seed}", unit="batch", leave=False)
            runs[method][f"seed{seed}"] = evaluation.run(batches, f"{method}_seed{seed}")
        if info.get("deterministic") and len(method_seeds) > 1:
            evaluation.notes.append(f"{info['model']} maps a mask to one image: its std over seeds is 0")
    pairs = max((c["pairs"] for c in evaluation.counts.values()), default=0)
    return Comparison(runs, evaluation.reference(), evaluation.notes, len(loader.dataset), pairs)


def side_by_side(scorer: Scorer, weights: dict[str, Path], cases: int, seed: int) -> list[GridRow]:
    """Labelled rows of ``H x W x 3`` tiles: the input mask, then each generator's image for it (same masks and
    seed). A multi-channel MRI case gives one row per sequence, labelled with its name (the mask repeated on
    each); another image one row, label "".

    The masks are those of the first ``cases`` samples of the split that have a non-empty mask.
    """
    picked = []
    for i in range(len(scorer.dataset)):
        sample = scorer.dataset[i]
        if sample["has_mask"] and sample["mask"].any():
            picked.append(sample)
        if len(picked) == cases:
            break
    if not picked:
        return []
    batch = default_collate(picked)
    images = []
    for path in weights.values():
        generate, _ = scorer.generator(path)
        with torch.no_grad():
            images.append(generate(batch, seed).float().cpu())
    views = ([(sequence_label(s), slice(c, c + 1)) for c, s in enumerate(mri_sequences(scorer.dataset.channel_names))]
             or [("", slice(None))])
    return [(label, [mask_to_rgb(batch["mask"][r]), *(to_rgb(x[r, part]) for x in images)])
            for r in range(len(picked)) for label, part in views]
