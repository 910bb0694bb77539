"""Validation curves over a run's training checkpoints, for convergence plots.

A kept training state's EMA generator becomes a weights file (``state_as_weights``) that ``compare.Scorer``
loads like final weights; ``checkpoint_frd`` scores such files (``kept_states_frd``: those of run folders),
``logged_val_fm`` reads the validation ``L_FM`` the training loop logged instead.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from ..checkpoint import CheckpointError, list_states, load_state, load_weights, save_weights
from ..evaluation.generation import generated_batches
from .compare import Scorer


def state_as_weights(state_path: Path, final: Path, dest: Path) -> tuple[int, Path]:
    """A training state's generator as a weights file like ``final`` (same metadata): ``(step, dest)``.

    The EMA generator, as ``final`` holds it; a run without an EMA (``flow.ema=false``, ``gan.ema=false``)
    exports its raw generator, and so does this.
    """
    state = load_state(state_path)
    if "ema" in state:
        module = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    elif "generator" in state.get("nets", {}):
        module = state["nets"]["generator"]
    else:
        raise CheckpointError(f"{state_path}: holds neither EMA weights nor a generator")
    _, meta = load_weights(final)
    step = int(state["step"])
    return step, save_weights(module, dest, {**meta, "step": step})


def checkpoint_frd(scorer: Scorer, runs: dict[str, Sequence[tuple[int, Path]]], images: int) -> dict[str, list]:
    """FRD (mean over channels) of each (step, weights) of each run against the first ``images`` of the split."""
    evaluation, loader = scorer.evaluation(), scorer.loader(images)
    first, curves = True, {}
    for name, points in runs.items():
        curves[name] = []
        for step, path in points:
            generate, _ = scorer.generator(path)
            on_real = (lambda b: evaluation.add_real(b["image"])) if first else None
            first = False
            batches = generated_batches(loader, generate, scorer.spec.seeds[0], "noise", on_real)
            curves[name].append((step, evaluation.run(batches, f"{name}_{step}")["frd/mean"]))
    return curves


def kept_states_frd(scorer: Scorer, runs: dict[str, Path], images: int, scratch: Path) -> dict[str, list]:
    """``checkpoint_frd`` of the training states each run folder kept (label -> folder), in step order."""
    points = {label: [state_as_weights(p, folder / "final.safetensors", scratch / f"states-{i}-{p.stem}.st")
                      for p in list_states(folder / "checkpoints")]
              for i, (label, folder) in enumerate(runs.items())}
    return checkpoint_frd(scorer, points, images)


def frd_label(version: str, images: int) -> str:
    """The y-axis label of validation FRD curves on ``images`` images."""
    return f"validation FRD {version} ({'log, ' if version == 'v1' else ''}{images} images)"


def logged_val_fm(metrics_csv: Path) -> list[tuple[float, float]]:
    """(step, validation L_FM) from a run's ``metrics.csv``."""
    with open(metrics_csv, newline="") as fh:
        return [(float(r["step"]), float(r["value"])) for r in csv.DictReader(fh)
                if r["split"] == "val" and r["name"] == "fm_loss"]
