"""Scale-out and data supply of our training: DDP over 2 gloo processes vs 1, and loader-only throughput.

* DDP: ``ours`` through ``meddtfm.training.loop.train`` in 1, then 2 spawned processes (one torch
  thread each, ``data.num_workers=0`` so each process is one core's work), each with the suite's
  per-process batch (2 processes: twice the global batch). Figure: global images per second over the
  steps, first step included. On 2 CPU cores that compete with other work this shows that
  scale-out works, not how it scales on GPUs.
* loader: images per second of the training split's DataLoader alone (the suite's batch and
  workers, augmentation on), to compare with the training step's.
"""
from __future__ import annotations

import os
import socket
from multiprocessing.context import BaseContext
from pathlib import Path

import torch

from meddtfm.training.distributed import distributed_session
from meddtfm.training.loop import train

from .contenders import Suite, build, config, data
from .data_loading import loader_throughput
from .training import THREADS, isolated_all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(args: tuple) -> dict:
    """One DDP rank (a spawned process): train ``ours``, return its steps and seconds in steps."""
    suite, dataset, extra, rank, world, port, out = args
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(THREADS)
    with distributed_session("cpu") as env:
        steps = [f"train.steps={suite.ddp_steps}", "data.num_workers=0"]
        cfg, train_set, _, task = build("ours", suite, dataset, suite.seeds[0], [*extra, *steps], env)
        result = train(task, cfg, train_set, None, env, Path(out))
    return {"steps": result.step, "seconds": result.seconds, "batch": cfg.data.batch_size}


def ddp(ctx: BaseContext, suite: Suite, dataset: str, extra: list[str], work: Path) -> dict[int, float]:
    """``{processes: global img/s}`` for 1 and 2 gloo processes."""
    out = {}
    for world in (1, 2):
        port = _free_port()
        jobs = [(suite, dataset, extra, r, world, port, str(work / f"ddp-{dataset}-{world}")) for r in range(world)]
        ranks = isolated_all(ctx, _rank, jobs)
        out[world] = sum(r["steps"] * r["batch"] for r in ranks) / max(r["seconds"] for r in ranks)
        print(f"  [{dataset}] DDP {world} process(es): {out[world]:.2f} img/s", flush=True)
    return out


def loader(suite: Suite, dataset: str) -> float:
    """Images per second of the training split's DataLoader alone (first ``suite.loader_batches`` batches)."""
    cfg = config(suite, dataset, suite.seeds[0])
    train_set, _ = data(cfg)
    return loader_throughput(train_set, cfg.data.batch_size, cfg.data.num_workers, suite.loader_batches)["img_per_s"]
