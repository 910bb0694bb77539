"""The one training loop every model uses (Med-DT-FM, its baselines, the segmenters).

A ``TrainTask`` owns the networks and the losses; ``train`` owns the rest, in the order of each step:
initialise (devices, DDP, optimisers, resume), accumulate gradients per phase, update weights,
update EMA, then log, validate, snapshot and checkpoint. A GAN is two phases (discriminator, then
generator) over the same micro-batches; a segmenter or a flow without adversary is one.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import list_states, load_state, save_state, save_weights
from ..config import Config, TrainConfig, to_dict
from ..data.base import MedicalDataset, loader_workers, usable_cpus
from ..files import atomic_write_text
from .distributed import DistEnv, ShardedSampler, any_rank, batches_per_epoch, mean_across_ranks, to_device
from .logs import MetricLogger
from .resume import check_resume

log = logging.getLogger(__name__)
Nets = dict[str, nn.Module]
RESULT_FILE = "train_result.json"  # in OUT: {"step", "seconds", "images"} of TrainResult, with final.safetensors
LossFn = Callable[[Nets, dict, int], tuple[Tensor, dict[str, float]]]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; no checkpoint was written after it."""


@dataclass
class Phase:
    """One optimiser's update: ``loss(nets, batch, step)`` trains the modules named in ``trains``."""

    name: str
    trains: list[str]
    loss: LossFn
    start_step: int = 0
    lr_scale: float = 1.0
    module_lr_scales: dict[type, float] = field(default_factory=dict)  # e.g. {KANLinear: 100.0}, on top of lr_scale


class TrainTask(Protocol):
    """What a model brings to the loop."""

    nets: nn.ModuleDict  # every trainable network, by name; checkpointed and DDP-wrapped
    ema_net: str | None  # the network whose EMA is kept (used for sampling / validation)
    best_metric: tuple[str, str] | None  # ("val/dice", "max") chooses best.safetensors

    def phases(self) -> list[Phase]: ...

    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]: ...

    def snapshot(self, nets: Nets, step: int, out: Path) -> None: ...

    def export_config(self) -> dict: ...


@dataclass
class TrainResult:
    step: int
    seconds: float = 0.0  # time in training steps (data, forward, backward, update, EMA); not eval or I/O
    images: int = 0  # training images seen: steps x data.batch_size x processes x train.grad_accumulation
    last: dict[str, float] = field(default_factory=dict)
    best: float | None = None


def ema_decay_at(updates: int, decay: float) -> float:
    """EMA decay after ``updates`` averages: ``min(decay, (1 + n) / (10 + n))``.

    The warm-up keeps the random initial weights from lingering: with a fixed 0.999 they still
    weigh 0.999^2000 = 13% after 2k steps, enough to turn samples into noise.
    """
    return min(decay, (1 + updates) / (10 + updates))


def target_ema_decay(tc: TrainConfig, images_per_update: int) -> float:
    """The decay ``ema_decay_at`` warms up to: ``train.ema_decay``, or with ``train.ema_halflife_images = h > 0``
    ``0.5 ** (images_per_update / h)``, under which an update's weight halves every h images seen.

    The EMA's length is then set in images, as EDM's ``ema_halflife_kimg`` (Karras et al. 2022) sets it,
    so it follows the run's length and global batch (``images_per_update`` = per-device batch x
    processes x gradient accumulation) instead of its step count.
    """
    if tc.ema_halflife_images > 0:
        return 0.5 ** (images_per_update / tc.ema_halflife_images)
    return tc.ema_decay


def ema_of(net: nn.Module, decay: float) -> AveragedModel:
    """``AveragedModel`` of ``net`` (parameters and buffers) with the warmed-up decay of ``ema_decay_at``."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor | int) -> None:
        if not averaged[0].is_floating_point():  # integer buffers (counters) follow the model
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1.0 - ema_decay_at(int(num_averaged), decay))

    return AveragedModel(net, multi_avg_fn=update, use_buffers=True)


def param_groups(phase: Phase, nets: nn.ModuleDict, lr: float) -> list[dict]:
    """Adam groups for ``phase``: its modules' parameters at ``lr * phase.lr_scale``, those owned by a module
    type in ``phase.module_lr_scales`` additionally scaled (empty groups dropped)."""
    scaled: dict[float, list[nn.Parameter]] = {1.0: []}
    for name in phase.trains:
        for module in nets[name].modules():
            scale = next((s for t, s in phase.module_lr_scales.items() if isinstance(module, t)), 1.0)
            scaled.setdefault(scale, []).extend(module.parameters(recurse=False))
    return [{"params": ps, "lr": lr * phase.lr_scale * s} for s, ps in scaled.items() if ps]


def cpu_threads(num_workers: int) -> int:
    """Intra-op threads for training on the CPU: the cores the loader workers leave, at least 1.

    Oversubscribed OpenMP threads spin against each other: on 2 cores, 2 threads plus a busy loader
    worker made a small generator's step 40x slower than 1 thread. ``OMP_NUM_THREADS`` (torchrun
    sets it to 1 per process) takes precedence.
    """
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    return max(1, usable_cpus() - loader_workers(num_workers))


def _batches(loader: DataLoader, sampler: ShardedSampler, start: int, per_epoch: int) -> Iterator[dict]:
    """Endless stream of batches from global batch index ``start`` on, epoch by epoch."""
    epoch, skip = divmod(start, per_epoch)
    while True:
        sampler.set_epoch(epoch, skip * loader.batch_size)
        loader.dataset.set_epoch(epoch)
        yield from loader
        epoch, skip = epoch + 1, 0


def train(task: TrainTask, cfg: Config, train_set: MedicalDataset, val_set: MedicalDataset | None,
          env: DistEnv, out: Path, resume: Path | None = None) -> TrainResult:
    """Run ``cfg.train.steps`` optimiser steps of ``task``; checkpoints and logs go to ``out``."""
    tc = cfg.train
    out.mkdir(parents=True, exist_ok=True)
    # Initialise: devices, DDP wrappers, optimisers with warm-up, EMA, data, resume.
    if env.device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.data.num_workers))
    if tc.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    task.nets.to(env.device)
    wrapped: Nets = {k: DDP(v, device_ids=[env.device] if env.device.type == "cuda" else None) if env.distributed else v
                     for k, v in task.nets.items()}
    if tc.compile:
        wrapped = {k: torch.compile(v) for k, v in wrapped.items()}
    phases = task.phases()
    optims = {p.name: torch.optim.Adam(param_groups(p, task.nets, tc.lr), betas=tuple(tc.betas),
                                       weight_decay=tc.weight_decay, fused=True)
              for p in phases}  # fused: one kernel for all parameters (CPU too), 5x faster than the loop
    warm = max(tc.warmup_steps, 1)
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / warm)) for k, o in optims.items()}
    images_per_update = cfg.data.batch_size * env.world_size * tc.grad_accumulation
    ema = ema_of(task.nets[task.ema_net], target_ema_decay(tc, images_per_update)) if task.ema_net else None
    sampler = ShardedSampler(len(train_set), env.rank, env.world_size, seed=cfg.seed)
    if sampler.per_rank < cfg.data.batch_size:
        raise ValueError(f"the training split has {len(train_set)} samples: too few for {env.world_size} "
                         f"process(es) x data.batch_size={cfg.data.batch_size}")
    loader = DataLoader(train_set, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                        num_workers=loader_workers(cfg.data.num_workers), pin_memory=env.device.type == "cuda",
                        persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed))
    per_epoch = batches_per_epoch(sampler, cfg.data.batch_size)
    val_every = tc.val_every if tc.val_every > 0 else max(per_epoch // tc.grad_accumulation, 1)  # 0: each epoch
    ckpt_dir = out / "checkpoints"
    step, best = 0, None
    resume = resume or (list_states(ckpt_dir)[-1] if list_states(ckpt_dir) else None)
    if resume is not None:
        state = load_state(resume, map_location=env.device)
        check_resume(state["config"], to_dict(cfg), resume)
        for name, net in task.nets.items():
            net.load_state_dict(state["nets"][name])
        for name, opt in optims.items():
            opt.load_state_dict(state["optims"][name])
            scheds[name].load_state_dict(state["scheds"][name])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"]["cpu"].cpu())
        if torch.cuda.is_available() and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        step, best = int(state["step"]), state.get("best")
        log.info("resumed from %s at step %d", resume, step)
    logger = MetricLogger(out, enabled=env.is_main, start_step=step)
    amp = torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=tc.amp and env.device.type == "cuda")
    stream = _batches(loader, sampler, step * tc.grad_accumulation, per_epoch)
    bar = tqdm(total=tc.steps, initial=step, desc="train", unit="step", disable=not env.is_main, dynamic_ncols=True)
    logs: dict[str, float] = {}
    started, done, step_seconds = time.monotonic(), step >= tc.steps, 0.0
    while not done:
        tick = time.perf_counter()
        micro = [to_device(next(stream), env.device) for _ in range(tc.grad_accumulation)]
        logs = {}
        for phase in phases:
            if step < phase.start_step:
                continue
            # Accumulate gradients: only this phase's networks require grad; DDP syncs on the last micro-batch.
            for name, net in task.nets.items():
                net.requires_grad_(name in phase.trains)
            opt = optims[phase.name]
            opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(micro):
                sync = i == len(micro) - 1 or not env.distributed
                with contextlib.ExitStack() as stack:
                    if not sync:
                        for n in phase.trains:
                            stack.enter_context(wrapped[n].no_sync())
                    with amp:
                        loss, terms = phase.loss(wrapped, batch, step)
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"{phase.name} loss is {loss.item()} at step {step} ({terms}); training stopped. "
                            f"The last good checkpoint is {(list_states(ckpt_dir) or ['none'])[-1]}.")
                    (loss / len(micro)).backward()
                for k, v in terms.items():
                    logs[k] = logs.get(k, 0.0) + v / len(micro)
            # Update weights.
            params = [q for n in phase.trains for q in task.nets[n].parameters()]
            if tc.grad_clip > 0:
                logs[f"{phase.name}/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, tc.grad_clip))
            opt.step()
            scheds[phase.name].step()
        for net in task.nets.values():
            net.requires_grad_(True)
        # Update EMA.
        if ema is not None:
            ema.update_parameters(task.nets[task.ema_net])
        step += 1
        step_seconds += time.perf_counter() - tick
        bar.update(1)
        out_of_time = tc.max_minutes > 0 and time.monotonic() - started >= 60 * tc.max_minutes
        done = step >= tc.steps or any_rank(out_of_time, env)
        # Log, validate, snapshot, checkpoint.
        if step % tc.log_every == 0 or done:
            logs = mean_across_ranks(logs, env)
            logs["lr"] = scheds[phases[0].name].get_last_lr()[0]
            logger.log(step, "train", logs)
            bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in logs.items() if "grad" not in k and k != "lr"})
        eval_nets = {**task.nets, **({task.ema_net: ema.module} if ema is not None else {})}
        if val_set is not None and (step % val_every == 0 or done):
            metrics = task.validate(eval_nets, DataLoader(val_set, batch_size=cfg.data.batch_size,
                                                          num_workers=loader_workers(cfg.data.num_workers)), env)
            logger.log(step, "val", metrics)
            if task.best_metric and task.best_metric[0] in metrics:
                value, mode = metrics[task.best_metric[0]], task.best_metric[1]
                if math.isfinite(value) and (best is None or (value > best if mode == "max" else value < best)):
                    best = value
                    if env.is_main:
                        save_weights(eval_nets[task.ema_net or next(iter(task.nets))].state_dict(),
                                     out / "best.safetensors",
                                     {**task.export_config(), "step": step, task.best_metric[0]: value})
        if env.is_main and (step % tc.sample_every == 0 or done):
            task.snapshot(eval_nets, step, out)
        if env.is_main and (step % tc.checkpoint_every == 0 or done):
            state = {
                "step": step, "best": best, "config": to_dict(cfg),
                "nets": {k: v.state_dict() for k, v in task.nets.items()},
                "optims": {k: o.state_dict() for k, o in optims.items()},
                "scheds": {k: s.state_dict() for k, s in scheds.items()},
                "rng": {"cpu": torch.get_rng_state(),
                        **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})},
                **({"ema": ema.state_dict()} if ema is not None else {}),
            }
            save_state(state, ckpt_dir, step, tc.keep_checkpoints)
    bar.close()
    if env.is_main:
        final = ema.module if ema is not None else task.nets[next(iter(task.nets))]
        save_weights(final.state_dict(), out / "final.safetensors",
                     {**task.export_config(), "step": step, "images": step * images_per_update})
        atomic_write_text(out / RESULT_FILE, json.dumps({"step": step, "seconds": step_seconds,
                                                         "images": step * images_per_update}) + "\n")
    logger.close()
    return TrainResult(step=step, seconds=step_seconds, images=step * images_per_update, last=logs, best=best)

