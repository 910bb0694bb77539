"""``meddtfm distill-steps``: fine-tune a trained flow into a k-step generator (``meddtfm.training.few_step``).

The run reads the flow's own training data (its split, without augmentation: ``training_data_config``;
``--config`` / ``--set`` may change other ``data.*`` keys and ``data.batch_size``), trains
``few_step.iterations`` steps at ``few_step.lr`` through the training loop (progress bar, EMA, atomic
checkpoints, resume) and writes ``OUT/final.safetensors``: a Med-DT-FM generator whose metadata records
the method, the step counts it was trained for and the distilled guidance (``flow.few_step.FewStep``),
which ``meddtfm sample`` and ``meddtfm evaluate`` load like any other. ``train_result.json`` and the
metadata record the training images it saw; ``train_result.json`` also the base flow's and their ratio,
the issue's budget (``few_step.max_budget``, 25%: a warning, not a stop, when the plan exceeds it).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import FEW_STEP_METHODS, Config, ConfigError, save_config
from .common import run_options
from .train import _config_of_checkpoints, _drop_checkpoints, _resume_option

if TYPE_CHECKING:
    from ..training.distributed import DistEnv
    from ..training.few_step import BaseFlow
    from ..training.loop import TrainResult


def _steps(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(k) for k in value.replace(",", " ").split()]
    except ValueError as err:
        raise click.BadParameter(f"expected step counts like 1,2,4, got {value!r}") from err


def distillation_config(cfg: Config, base: BaseFlow, method: str | None, steps: list[int] | None,
                        config_path: str | None, overrides: tuple[str, ...]) -> Config:
    """``cfg`` with the base flow's data (its split; ``--config`` / ``--set`` may change other ``data.*`` keys),
    generator and flow sections, the command's method and steps, and ``train.steps`` / ``train.lr`` from
    ``few_step.iterations`` / ``few_step.lr``."""
    from ..synthesis import training_data_config
    from ..training.few_step import recorded_sections

    chosen = {**({"method": method} if method else {}), **({"steps": steps} if steps else {})}
    fs = dataclasses.replace(cfg.few_step, checkpoint=str(base.path), **chosen)
    data = training_data_config(base.meta["data"], config_path, overrides, base.path)
    generator, flow = recorded_sections(base.meta)
    return dataclasses.replace(cfg, data=data, few_step=fs, generator=generator, flow=flow,
                               train=dataclasses.replace(cfg.train, steps=fs.iterations, lr=fs.lr))


def run_distillation(cfg: Config, out: Path, checkpoint: str | Path, method: str | None = None,
                     steps: list[int] | None = None, teacher: str | None = None, config_path: str | None = None,
                     overrides: tuple[str, ...] = (), resume: Path | None = None,
                     fresh: bool = False) -> tuple[TrainResult, DistEnv, dict]:
    """``distill-steps``'s work; returns the loop's result, the processes and the budget record."""
    from ..checkpoint import CheckpointError
    from ..data import build_dataset
    from ..files import atomic_write_text
    from ..synthesis import load_generator
    from ..training.distributed import distributed_session
    from ..training.few_step import build_task, load_base_flow
    from ..training.loop import RESULT_FILE, train
    from ..training.split_check import SplitMismatchError
    from .common import seed_everything

    try:
        base = load_base_flow(checkpoint)
        if teacher:  # the U-KAN of the reference path moved: check it fits, record where it is now
            load_generator(checkpoint, teacher, need_teacher=True)
            base.meta["teacher"] = str(teacher)
        cfg = distillation_config(cfg, base, method, steps, config_path, overrides)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from err
    except (ConfigError, SplitMismatchError) as err:
        raise click.UsageError(str(err)) from err
    save_config(cfg, out / "config.yaml")
    seed_everything(cfg.seed)
    with distributed_session(cfg.train.device) as env:
        train_set = build_dataset(cfg.data, "train", cfg.seed)
        planned = cfg.train.steps * cfg.data.batch_size * env.world_size * cfg.train.grad_accumulation
        if env.is_main and planned > cfg.few_step.max_budget * base.images:
            click.echo(f"warning: {planned} training images planned, {planned / max(base.images, 1):.0%} of the "
                       f"{base.images} the base flow saw (few_step.max_budget {cfg.few_step.max_budget:.0%})", err=True)
        _drop_checkpoints(out, fresh, env)
        try:
            task = build_task(cfg, train_set, env, base)
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        with _config_of_checkpoints(out, resume):
            result = train(task, cfg, train_set, None, env, out, resume=resume)
    budget = {"base_images": base.images, "budget_fraction": result.images / max(base.images, 1)}
    if env.is_main:
        record = json.loads((out / RESULT_FILE).read_text())
        atomic_write_text(out / RESULT_FILE, json.dumps({**record, **budget}) + "\n")
    return result, env, budget


def run_planned_distillation(cfg: Config, out: Path) -> tuple[TrainResult, DistEnv]:
    """A study's distillation: ``cfg`` is the whole run config, ``few_step.checkpoint`` the base flow. It is read
    as ``distill-steps --config OUT/requested.yaml`` reads it, the way a study's child process runs it."""
    from ..experiments.parallel import REQUESTED

    save_config(cfg, out / REQUESTED)
    result, env, _ = run_distillation(cfg, out, str(cfg.few_step.checkpoint), config_path=str(out / REQUESTED))
    return result, env


@click.command("distill-steps")
@run_options(default_out="runs/distill")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="The flow to distil: final.safetensors (or best.safetensors) of `meddtfm train`.")
@click.option("--method", type=click.Choice(FEW_STEP_METHODS.names()), default=None,
              help=f"Default few_step.method. {FEW_STEP_METHODS.describe()}.")
@click.option("--steps", callback=_steps, default=None, metavar="K,K",
              help="The NFEs to train for, e.g. 1,2,4 (default few_step.steps); sampling accepts only these.")
@click.option("--teacher", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The U-KAN teacher of the flow's reference path, if it moved since training (recorded for "
                   "reference-guided sampling).")
@_resume_option
def distill_steps(cfg: Config, out: Path, checkpoint: str, method: str | None, steps: list[int] | None,
                  teacher: str | None, resume: str | None, fresh: bool) -> None:
    """Fine-tune a trained flow into a generator of 1 to a few network evaluations; weights: OUT/final.safetensors.

    Iterations, learning rate, teacher NFE, guidance and loss weights: the few_step section (--set few_step.KEY=V).
    """
    params = click.get_current_context().params
    result, env, budget = run_distillation(cfg, out, checkpoint, method, steps, teacher, params["config_path"],
                                           params["overrides"], Path(resume) if resume else None, fresh)
    if env.is_main:
        click.echo(f"distilled for {result.step} steps in {result.seconds:.0f} s ({result.images} images, "
                   f"{budget['budget_fraction']:.1%} of the base flow's {budget['base_images']}); "
                   f"weights: {out / 'final.safetensors'}")
