"""``meddtfm pretrain-encoder`` (the segmenters) and ``meddtfm train`` (the generators)."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import Config, save_config, to_dict
from ..training.resume import ResumeConfigError
from ..training.tasks import GENERATORS
from .common import run_options

if TYPE_CHECKING:
    from ..training.distributed import DistEnv
    from ..training.loop import TrainResult


def _resume_option(fn):
    fn = click.option("--resume", "resume", type=click.Path(dir_okay=False, exists=True), default=None,
                      help="Training state to resume from (default: the newest in OUT/checkpoints, if any).")(fn)
    return click.option("--fresh", is_flag=True, help="Ignore checkpoints already in OUT/checkpoints.")(fn)


def _drop_checkpoints(out: Path, fresh: bool, env: DistEnv) -> None:
    """``--fresh``: rank 0 deletes the training states already in OUT/checkpoints before any rank looks."""
    if not fresh:
        return
    if env.is_main:
        for old in (out / "checkpoints").glob("step_*.pt"):
            old.unlink(missing_ok=True)
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def _config_of_checkpoints(out: Path, resume: Path | None) -> Iterator[None]:
    """If resuming OUT's own newest state is refused, put its settings back into OUT/config.yaml,
    which ``run_options`` (or ``reproduce``) overwrote with this run's, so the file describes OUT's checkpoints."""
    try:
        yield
    except ResumeConfigError as err:
        if resume is None:
            save_config(err.saved, out / "config.yaml")
        raise


def run_pretraining(cfg: Config, out: Path, model: str | None = None, resume: Path | None = None,
                    fresh: bool = False) -> tuple[TrainResult, DistEnv]:
    """``meddtfm pretrain-encoder``'s work: train segmenter ``model`` (default: ``cfg.encoder.model``) into ``out``."""
    from ..data import build_dataset
    from ..training.distributed import distributed_session
    from ..training.loop import train
    from ..training.segmentation import SegmentationTask
    from .common import seed_everything

    if model is not None:
        cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, model=model))
    seed_everything(cfg.seed)
    with distributed_session(cfg.train.device) as env:
        train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
        _drop_checkpoints(out, fresh, env)
        with _config_of_checkpoints(out, resume):
            result = train(SegmentationTask(cfg, train_set), cfg, train_set, val_set if len(val_set) else None, env,
                           out, resume=resume)
    return result, env


@click.command("pretrain-encoder")
@run_options(default_out="runs/encoder")
@click.option("--model", type=click.Choice(["ukan", "unet"]), default=None,
              help="ukan: the distillation teacher (default); "
                   "unet: MONAI BasicUNet, the independent evaluation segmenter.")
@_resume_option
def pretrain_encoder(cfg: Config, out: Path, model: str | None, resume: str | None, fresh: bool) -> None:
    """Train a segmenter on the dataset's masks (Dice + BCE), validate per class, keep OUT/best.safetensors."""
    result, env = run_pretraining(cfg, out, model, Path(resume) if resume else None, fresh)
    if env.is_main:
        click.echo(f"trained {model or cfg.encoder.model} for {result.step} steps; best val mean Dice {result.best}; "
                   f"weights: {out / 'best.safetensors'}")


def run_training(cfg: Config, out: Path, model: str = "meddtfm", resume: Path | None = None,
                 fresh: bool = False) -> tuple[TrainResult, DistEnv]:
    """``meddtfm train``'s work: train the generator ``model`` into ``out``; bad settings raise ``click.UsageError``."""
    from ..data import build_dataset
    from ..models.segmenters import load_teacher
    from ..training.distributed import distributed_session
    from ..training.loop import train
    from ..training.split_check import SEGMENTER_KEYS, SplitMismatchError, check_same_split
    from .common import seed_everything

    kind = GENERATORS[model]
    seed_everything(cfg.seed)
    with distributed_session(cfg.train.device) as env:
        train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
        teacher = None
        if kind.uses_teacher(cfg) and cfg.encoder.checkpoint:
            teacher, meta = load_teacher(cfg.encoder.checkpoint)
            if tuple(meta["channel_names"]) != tuple(train_set.channel_names):
                raise click.UsageError(f"the teacher {cfg.encoder.checkpoint} was trained on channels "
                                       f"{meta['channel_names']}, the data has {list(train_set.channel_names)}")
            try:  # the teacher must not have trained on this run's val / test subjects
                check_same_split(meta.get("data", {}), to_dict(cfg.data), f"the teacher {cfg.encoder.checkpoint}",
                                 "this run's data", SEGMENTER_KEYS,
                                 hint="Pretrain the teacher on this run's split and resolution, or set those data "
                                      "keys to the teacher's")
            except SplitMismatchError as err:
                raise click.UsageError(str(err)) from err
        _drop_checkpoints(out, fresh, env)
        try:
            task = kind.build(cfg, train_set, env, teacher)
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        with _config_of_checkpoints(out, resume):
            result = train(task, cfg, train_set, val_set if len(val_set) else None, env, out, resume=resume)
    return result, env


@click.command("train")
@run_options(default_out="runs/train", recipe=True)
@click.option("--model", type=click.Choice(GENERATORS.names()), default="meddtfm", show_default=True,
              help=f"The generator: {GENERATORS.describe()}.")
@_resume_option
def train_command(cfg: Config, out: Path, model: str, resume: str | None, fresh: bool) -> None:
    """Train a generator; checkpoints, logs (CSV, TensorBoard), sample grids and weights go to OUT.

    Runs on every GPU torchrun gives it: torchrun --nproc_per_node=4 -m meddtfm train --config ...
    """
    result, env = run_training(cfg, out, model, Path(resume) if resume else None, fresh)
    if env.is_main:
        metric = GENERATORS[model].val_metric
        click.echo(f"trained {model} for {result.step} steps in {result.seconds:.0f} s; "
                   f"best val {metric} {result.best}; weights: {out / 'final.safetensors'}")
