"""Training and sampling throughput of the Table 1 models on this machine (issue: Baselines from Table 1).

    python -m benchmarks.baselines [--resolutions 64 128] [--batch 8] [--warmup 3] [--rounds 6]

Models at their default sizes on 4-channel, 3-class MRI phantoms: pix2pixHD and MedGAN (``GANTask``),
and Med-DT-FM (``MedDTFMTask`` with the default ``GeneratorConfig``, ``L_FM + L_DT`` against a
default-width, randomly initialised U-KAN teacher; ``L_adv`` off, as before ``flow.adv_start_step``).

* training: one optimiser step per phase, as one iteration of ``meddtfm.training.loop.train`` does
  it (requires_grad per phase, Adam, grad clipping, EMA), on one fixed batch: data loading, logging
  and checkpoints are left out;
* sampling: the EMA generator in eval mode, no gradients; the baselines map a mask to an image in
  one pass, Med-DT-FM integrates with Heun over 8 steps (16 velocity evaluations, the condition
  encoded once), ``meddtfm.flow.integrate``.

All models and resolutions run in one process, alternating step by step (one training step and one
sample of each per round); the first ``--warmup`` steps and samples of each are not timed; the table
gives the median over the timed ones and, in brackets, the best (the least disturbed by other work on
a shared machine; its load average is printed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from meddtfm.config import Config, load_config
from meddtfm.data import build_dataset
from meddtfm.flow import integrate
from meddtfm.models.segmenters import build_segmenter
from meddtfm.models.ukan import FrozenTeacher
from meddtfm.training.distributed import DistEnv
from meddtfm.training.tasks import GENERATORS

MODELS = GENERATORS.names()
ENV = DistEnv(0, 1, torch.device("cpu"))


def trainer(task, cfg: Config) -> tuple[Callable[[dict, int], None], nn.Module]:
    """``step(batch, i)``: one training iteration as ``loop.train`` runs it; and the EMA generator."""
    train_cfg, phases = cfg.train, task.phases()
    params = {p.name: [q for n in p.trains for q in task.nets[n].parameters()] for p in phases}
    optims = {p.name: torch.optim.Adam(params[p.name], lr=train_cfg.lr, betas=tuple(train_cfg.betas)) for p in phases}
    ema = AveragedModel(task.nets[task.ema_net], multi_avg_fn=get_ema_multi_avg_fn(train_cfg.ema_decay),
                        use_buffers=True)
    nets = dict(task.nets.items())

    def step(batch: dict, i: int) -> None:
        for phase in phases:
            if i < phase.start_step:
                continue
            for name, net in task.nets.items():
                net.requires_grad_(name in phase.trains)
            optims[phase.name].zero_grad(set_to_none=True)
            loss, _ = phase.loss(nets, batch, i)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params[phase.name], train_cfg.grad_clip)
            optims[phase.name].step()
        for net in task.nets.values():
            net.requires_grad_(True)
        ema.update_parameters(task.nets[task.ema_net])

    return step, ema.module


def sampler(model: str, task, gen: nn.Module) -> Callable[[dict], torch.Tensor]:
    """``sample(batch) -> images``: one pass for a baseline; 8 Heun steps (NFE 16) for Med-DT-FM."""
    gen.eval()
    if GENERATORS[model].deterministic:
        return lambda batch: gen.generate(*task.inputs(batch))

    @torch.no_grad()
    def sample(batch: dict) -> torch.Tensor:
        cond = gen.condition(**task.condition_inputs(batch))
        x0 = torch.randn(batch["image"].shape, generator=torch.Generator().manual_seed(0))
        return integrate(lambda x, t: gen(x, t, cond), x0, "heun", steps=8).x

    return sample


def build(model: str, resolution: int, batch_size: int) -> dict:
    cfg = load_config(None, [f"data.resolution={resolution}", "data.phantom_count=48", "data.num_workers=0",
                             f"data.batch_size={batch_size}", "flow.adv_weight=0"])
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.data, "train", cfg.seed)
    kind = GENERATORS[model]
    teacher = (FrozenTeacher(build_segmenter(cfg.encoder, data.num_channels, data.num_classes))
               if kind.uses_teacher(cfg) else None)
    task = kind.build(cfg, data, ENV, teacher)  # before loading: Med-DT-FM attaches the references to ``data``
    batch = next(iter(DataLoader(data, batch_size=batch_size)))
    step, ema = trainer(task, cfg)
    count = {n: sum(p.numel() for p in net.parameters()) / 1e6 for n, net in task.nets.items()}
    return {"step": step, "sample": sampler(model, task, ema), "batch": batch, "i": 0, "train_s": [], "sample_s": [],
            "gen_M": count["generator"], "other_M": sum(v for k, v in count.items() if k != "generator"),
            "teacher_M": sum(p.numel() for p in teacher.parameters()) / 1e6 if teacher is not None else 0.0}


def timed(fn: Callable, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(resolutions: list[int], batch_size: int, warmup: int, rounds: int) -> dict[tuple[int, str], dict]:
    """Build every (resolution, model), warm each up, then time one training step and one sample of each in
    turn, ``rounds`` times: a change in the machine's load hits all of them alike."""
    runs = {(res, m): build(m, res, batch_size) for res in resolutions for m in MODELS}
    for r in runs.values():
        for _ in range(warmup):
            r["step"](r["batch"], r["i"])
            r["i"] += 1
            r["sample"](r["batch"])
    for k in range(rounds):
        for r in runs.values():
            r["train_s"].append(timed(r["step"], r["batch"], r["i"]))
            r["i"] += 1
            r["sample_s"].append(timed(r["sample"], r["batch"]))
        print(f"  round {k + 1}/{rounds} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps and samples per model first")
    parser.add_argument("--rounds", type=int, default=6, help="timed steps and samples per model, one per round")
    args = parser.parse_args()
    runs = run(args.resolutions, args.batch, args.warmup, args.rounds)
    print(f"\nbatch {args.batch}, {torch.get_num_threads()} CPU threads ({os.cpu_count()} cores, shared: 1-min load "
          f"average {os.getloadavg()[0]:.1f} at the end), medians of {args.rounds} timed steps / samples after "
          f"{args.warmup} warm-up; sampling: baselines one pass, Med-DT-FM Heun 8 steps (NFE 16)\n")
    print("| px | model | generator params (M) | D / projector params (M) | frozen teacher (M) | train img/s median (best) "
          "| sample img/s median (best) |")
    print("|---|---|---|---|---|---|---|")
    for (res, m), r in runs.items():
        train, sample = (f"{args.batch / statistics.median(r[k]):.2f} ({args.batch / min(r[k]):.2f})"
                         for k in ("train_s", "sample_s"))
        print(f"| {res} | {m} | {r['gen_M']:.2f} | {r['other_M']:.2f} | {r['teacher_M']:.2f} | {train} | {sample} |")


if __name__ == "__main__":
    main()
