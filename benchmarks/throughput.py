"""Training and sampling images per second of every contender, side by side in this process.

Each contender trains through ``benchmarks.baselines.trainer`` (one iteration of
``meddtfm.training.loop.train``: per-phase Adam, clipping, EMA) on the same pre-loaded batches, so data
loading is not in these figures (``benchmarks.scaling`` measures it apart). Rounds alternate: in each,
every contender takes one training step and (ours, peer) draws one batch of samples, starting from a
different contender each round; the first ``suite.warmup`` rounds are not timed. The figure of each is
its median over the timed rounds (a burst of load on the shared machine hits all contenders alike).
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from meddtfm.flow.sampling import ConditionInputs, SolverSpec, generate

from .baselines import timed, trainer
from .contenders import OURS, Suite, build
from .peer import PeerTask, count, peer_generate

SAMPLED = ("ours", "peer")


def sampler(task: object, net: nn.Module, nfe: int) -> Callable[[Tensor, Tensor], Tensor]:
    """``sample(mask, x0)``: images for the masks from the noise ``x0``, ``nfe`` velocity evaluations."""
    net.eval()

    @torch.no_grad()
    def sample(mask: Tensor, x0: Tensor) -> Tensor:
        if isinstance(task, PeerTask):
            return peer_generate(net, task.scheduler, mask, x0, nfe)
        return generate(net, x0, ConditionInputs(mask.shape[0], mask), SolverSpec("heun", nfe)).x

    return sample


def throughput(suite: Suite, dataset: str, seed: int, extra: list[str]) -> dict[str, dict[str, float]]:
    """Per contender: ``train_img_s`` and (ours, peer) ``sample_img_s`` medians, and parameter counts (M)."""
    runs: dict[str, dict] = {}
    for name in ("peer", *OURS):
        cfg, train_set, _, task = build(name, suite, dataset, seed, extra)
        step, ema = trainer(task, cfg)
        net = task.nets[task.ema_net]
        runs[name] = {"step": step, "sample": sampler(task, ema, suite.nfe) if name in SAMPLED else None,
                      "train_s": [], "sample_s": [], "params_M": count(net) / 1e6,
                      "trained_params_M": count(task.nets) / 1e6}
    loader = DataLoader(train_set, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    batches = [b for b, _ in zip(loader, range(3))]
    noise = torch.randn(batches[0]["image"].shape, generator=torch.Generator().manual_seed(0))
    names = list(runs)
    for k in range(suite.warmup + suite.rounds):
        batch = batches[k % len(batches)]
        for name in names[k % len(names):] + names[:k % len(names)]:
            r = runs[name]
            seconds = timed(r["step"], batch, k)
            if k >= suite.warmup:
                r["train_s"].append(seconds)
            if r["sample"] is not None:
                seconds = timed(r["sample"], batch["mask"], noise)
                if k >= suite.warmup:
                    r["sample_s"].append(seconds)
        print(f"  [{dataset}] throughput round {k + 1}/{suite.warmup + suite.rounds}, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    b = cfg.data.batch_size
    return {name: {"train_img_s": b / statistics.median(r["train_s"]),
                   **({"sample_img_s": b / statistics.median(r["sample_s"])} if r["sample_s"] else {}),
                   "params_M": r["params_M"], "trained_params_M": r["trained_params_M"]}
            for name, r in runs.items()}
