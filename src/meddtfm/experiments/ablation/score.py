"""The ablation's scoring of one dataset: every finished run found in ``OUT/DATASET``, on the validation split.

A run is found by its files: ``DATASET/VARIANT/variant.yaml`` and ``DATASET/VARIANT/seedK/final.safetensors``,
so the tables hold the runs of earlier invocations (other ``--only`` groups) too. Every run is scored by
the same ``compare.Scorer`` as Table 1, with sampling seed K; its numbers go to
``DATASET/eval/VARIANT/seedK/metrics.json`` (its convergence points to ``convergence.json`` beside it) and
are reused while the weights, the segmenter and the scoring settings are those recorded there.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ...checkpoint import list_states, load_weights
from ...config import Config, load_config, save_config
from ...files import atomic_write_text
from ..compare import Scorer
from ..convergence import kept_states_frd
from ..reuse import cached, score_cached, stamp
from ..runs import finished
from .preset import Variant

VARIANT_FILE = "variant.yaml"


@dataclass
class Found:
    """A finished run of a variant: its training seed, folder, config and ``{"step", "seconds"}``."""

    variant: Variant
    seed: int
    folder: Path
    cfg: Config
    record: dict

    @property
    def key(self) -> str:
        return f"{self.variant.name}/seed{self.seed}"


@dataclass
class Scores:
    """Each run's metrics (by ``Found.key``), the segmenter on the real images, notes, samples and pairs scored."""

    runs: dict[str, dict[str, float]]
    reference: dict[str, float]
    notes: list[str]
    samples: int
    pairs: int


def save_variant(folder: Path, variant: Variant) -> None:
    """Record ``variant`` in ``folder/NAME/variant.yaml``, which makes its runs findable."""
    save_config(variant, folder / variant.name / VARIANT_FILE)


def found_runs(folder: Path, order: Sequence[str]) -> dict[str, list[Found]]:
    """Variant name -> its finished runs in ``folder`` by seed: the variants of ``order`` first, then the others."""
    found: dict[str, list[Found]] = {}
    for spec in sorted(folder.glob(f"*/{VARIANT_FILE}")):
        variant = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Variant), OmegaConf.load(spec)))
        runs = []
        for seed_dir in spec.parent.glob("seed*"):
            record = finished(seed_dir)
            if record is not None and seed_dir.name[4:].isdigit():
                runs.append(Found(variant, int(seed_dir.name[4:]), seed_dir, load_config(seed_dir / "config.yaml"),
                                  record))
        if runs:
            found[variant.name] = sorted(runs, key=lambda r: r.seed)  # type: ignore[union-attr]
    first = [n for n in order if n in found]
    return {n: found[n] for n in [*first, *sorted(set(found) - set(first))]}


def same_weights(found: dict[str, list[Found]], reference: str) -> list[str]:
    """A note for each run whose final weights equal, tensor for tensor, those of ``reference``'s run of its seed:
    its overrides did not change the training at this budget, so its row is the reference's again."""
    ref = {r.seed: load_weights(r.folder / "final.safetensors")[0] for r in found.get(reference, [])}
    notes = []
    for name, runs in found.items():
        same = [r.seed for r in runs if name != reference and r.seed in ref
                and _equal(load_weights(r.folder / "final.safetensors")[0], ref[r.seed])]
        if same:
            notes.append(f"{name} trained to the same weights as {reference} (seed {', '.join(map(str, same))}): "
                         "at this budget its overrides change nothing")
    return notes


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def score_runs(scorer: Scorer, runs: Sequence[Found], eval_dir: Path) -> Scores:
    """The metrics of every run, each with its own training seed as sampling seed (``reuse.score_cached``)."""
    scored = score_cached(scorer, {r.key: r.folder / "final.safetensors" for r in runs}, eval_dir,
                          seeds={r.key: [r.seed] for r in runs})
    metrics = {k: {name: float(v) for name, v in next(iter(d["runs"].values())).items()}
               for k, d in scored.docs.items()}
    return Scores(metrics, scored.reference, scored.notes, scored.samples, scored.pairs)


def frd_points(scorer: Scorer, runs: Sequence[Found], images: int, eval_dir: Path,
               scratch: Path) -> dict[str, list[tuple[int, float]]]:
    """Validation FRD at each training state a run kept: ``Found.key`` -> (step, FRD), cached per run."""
    keys = {r.key: {"evaluation": asdict(scorer.spec), "images": images,
                    "states": [stamp(p) for p in list_states(r.folder / "checkpoints")]} for r in runs}
    docs = {r.key: cached(eval_dir / r.key / "convergence.json", keys[r.key]) for r in runs}
    todo = [r for r in runs if docs[r.key] is None]
    if todo:
        curves = kept_states_frd(scorer, {r.key: r.folder for r in todo}, images, scratch)
        for r in todo:
            docs[r.key] = {"settings": {"key": keys[r.key]}, "points": curves[r.key]}
            atomic_write_text(eval_dir / r.key / "convergence.json", json.dumps(docs[r.key]) + "\n")
    return {k: [(int(s), float(v)) for s, v in d["points"]] for k, d in docs.items()}
