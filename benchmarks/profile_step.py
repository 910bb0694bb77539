"""torch.profiler over training steps of a contender: where a step's CPU time goes.

    python -m benchmarks.profile_step [--contender ours] [--dataset lgg] [--suite cpu] [--steps 3] [--top 15]

Builds the contender as the suite does (``benchmarks.contenders``; one torch thread), trains
``--warmup`` untimed steps, times ``--timed`` more (median), then profiles ``--steps`` steps. Prints the
top operators by self CPU time and the forward time of each network the step runs (teacher,
generator, projectors, discriminator, or the peer's U-Net), from ``record_function`` ranges opened
by forward hooks: what remains of a step is backward, optimiser and EMA.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader

from .baselines import timed, trainer
from .contenders import OURS, SUITES, build
from .training import THREADS


def label_forwards(nets: dict[str, nn.Module]) -> None:
    """Wrap each network's forward in a ``record_function("forward: <name>")`` range."""
    for name, net in nets.items():
        ranges: list[record_function] = []

        def enter(module: nn.Module, args: tuple, name: str = name, ranges: list = ranges) -> None:
            ranges.append(record_function(f"forward: {name}").__enter__())

        def leave(module: nn.Module, args: tuple, output: object, ranges: list = ranges) -> None:
            ranges.pop().__exit__(None, None, None)

        net.register_forward_pre_hook(enter)
        net.register_forward_hook(leave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", choices=["peer", *OURS], default="ours")
    parser.add_argument("--suite", choices=list(SUITES), default="cpu")
    parser.add_argument("--dataset", default="lgg")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timed", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    cfg, train_set, _, task = build(args.contender, SUITES[args.suite], args.dataset, 0)
    step, _ = trainer(task, cfg)
    nets = {**task.nets, **({"teacher": task.teacher} if getattr(task, "teacher", None) is not None else {})}
    label_forwards(nets)
    batch = next(iter(DataLoader(train_set, batch_size=cfg.data.batch_size, shuffle=True,
                                 generator=torch.Generator().manual_seed(0))))
    for i in range(args.warmup):
        step(batch, i)
    seconds = [timed(step, batch, args.warmup + i) for i in range(args.timed)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.steps):
            step(batch, args.warmup + args.timed + i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / args.steps
    b = cfg.data.batch_size
    print(f"\n{args.contender} on {args.dataset} ({args.suite} suite: {cfg.data.resolution} px, batch {b}), "
          f"{THREADS} thread: step {statistics.median(seconds):.3f} s median of {args.timed} "
          f"({b / statistics.median(seconds):.2f} img/s); profiled {total:.0f} ms of CPU per step\n")
    print("| forward of | ms / step | share of step |\n|---|---|---|")
    for e in sorted((e for e in events if e.key.startswith("forward: ")), key=lambda e: -e.cpu_time_total):
        ms = e.cpu_time_total / 1e3 / args.steps
        print(f"| {e.key.removeprefix('forward: ')} | {ms:.0f} | {ms / total:.0%} |")
    print("\n| operator | self ms / step | share | calls / step |\n|---|---|---|---|")
    for e in sorted((e for e in events if not e.key.startswith("forward: ")), key=lambda e: -e.self_cpu_time_total)[:args.top]:
        ms = e.self_cpu_time_total / 1e3 / args.steps
        print(f"| {e.key} | {ms:.0f} | {ms / total:.0%} | {e.count // args.steps} |")


if __name__ == "__main__":
    main()
