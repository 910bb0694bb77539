"""A study's training runs: each trained once into its folder, reused when finished, resumed when started.

A folder that already holds final weights or checkpoints must hold the same configuration
(``check_reuse``, run for every run before any training); ``train_unless_finished`` then trains,
resumes or reuses it; the training loop records its steps and seconds in ``train_result.json``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from ..checkpoint import list_states, load_weights
from ..config import Config, ConfigError, save_config, to_dict
from ..training.loop import RESULT_FILE, TrainResult
from ..training.resume import config_changes

log = logging.getLogger(__name__)
SEGMENTERS = ("ukan", "unet")  # pretrain-encoder's models; every other run is a meddtfm train --model
FEW_STEP = "few-step"  # a meddtfm distill-steps run: its config's few_step section names the flow and the method


@dataclass
class Run:
    """One training run: its resolved config, folder, and ``ukan`` | ``unet`` | ``few-step`` | a ``meddtfm train
    --model``."""

    cfg: Config
    out: Path
    model: str


@dataclass(frozen=True)
class Trainers:
    """The work of ``pretrain-encoder``, ``train`` and ``distill-steps``: the CLI owns it and hands it to a study."""

    pretrain: Callable[[Config, Path], tuple[TrainResult, Any]]
    generator: Callable[[Config, Path, str], tuple[TrainResult, Any]]
    distill: Callable[[Config, Path], tuple[TrainResult, Any]] | None = None


def _reached_its_steps(run: Run) -> bool:
    """Whether the folder's finished run trained all of ``run``'s steps (then its time cap never acted)."""
    record = run.out / RESULT_FILE
    return record.is_file() and json.loads(record.read_text()).get("step") == run.cfg.train.steps


def check_reuse(run: Run) -> None:
    """A started run folder (final weights or checkpoints) must hold this run's configuration.

    A finished run that reached all its steps is reused under another ``train.max_minutes``: the cap
    did not stop it, so the run is the one a larger cap would train.
    """
    saved = run.out / "config.yaml"
    if saved.is_file() and ((run.out / "final.safetensors").is_file() or list_states(run.out / "checkpoints")):
        diff = [key for key, _, _ in config_changes(OmegaConf.to_container(OmegaConf.load(saved)), to_dict(run.cfg),
                                                    defaults=to_dict(Config()))]
        if diff == ["train.max_minutes"] and (run.out / "final.safetensors").is_file() and _reached_its_steps(run):
            return
        if diff:
            raise ConfigError(f"{run.out} was trained with other settings ({', '.join(diff[:6])}); "
                              "use another --out, or delete that folder to retrain it")


def finished(out: Path) -> dict | None:
    """``{"step", "seconds"}`` of the run in ``out`` if its final weights exist (seconds None: not recorded)."""
    if not (out / "final.safetensors").is_file():
        return None
    record = out / RESULT_FILE
    if record.is_file():
        return json.loads(record.read_text())
    return {"step": int(load_weights(out / "final.safetensors")[1].get("step", 0)), "seconds": None}


def train_unless_finished(run: Run, what: str, trainers: Trainers) -> dict:
    """Train (or resume) ``run`` unless its final weights exist; ``{"step", "seconds"}`` (None: not recorded)."""
    done = finished(run.out)
    if done is not None:
        log.info("%s: reusing %s", what, run.out / "final.safetensors")
        return done
    log.info("%s: training into %s (%d steps)", what, run.out, run.cfg.train.steps)
    save_config(run.cfg, run.out / "config.yaml")
    if run.model in SEGMENTERS:
        result, _ = trainers.pretrain(run.cfg, run.out)
    elif run.model == FEW_STEP:
        if trainers.distill is None:
            raise ValueError(f"{what}: a few-step run needs Trainers.distill")
        result, _ = trainers.distill(run.cfg, run.out)
    else:
        result, _ = trainers.generator(run.cfg, run.out, run.model)
    return {"step": result.step, "seconds": result.seconds}
