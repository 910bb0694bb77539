"""Training cost of the ablation's recipes: each variant's images/s as a ratio to no distillation.

    python -m benchmarks.recipes [--preset cpu] [--dataset lgg] [--only paper,nodt,bottleneck_cos] [--rounds 8]

Every variant of an ablation preset (``meddtfm reproduce ablation``'s registry of recipes) is built with
exactly the config its study run trains with (``experiments.stages.Dataset.generator``: the dataset's config,
the preset's common overrides and budget, the variant's overrides), against a randomly initialised teacher of
the configured width (speed does not depend on the weights), and trained side by side in this process on one
torch thread, on the same pre-loaded batches (data loading is not in these figures), through
``benchmarks.baselines.trainer`` (one iteration of ``training.loop.train``: every phase, Adam, clipping, EMA).

A recipe's cost changes over its run (``flow.adv_start_step`` switches the discriminator on,
``flow.dt_stop_step`` switches ``L_DT`` off), so round k trains each variant at step index
``k * steps / rounds``: the mean over the rounds is the mean step time of the whole budget. Rounds alternate
the order of the variants; the first ``--warmup`` steps of each are not timed. The overhead column is
``seconds per step / seconds per step of the no-DT variant - 1`` (the issue's target: at most 10%).
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from meddtfm.data import build_dataset
from meddtfm.experiments.ablation.preset import load_preset
from meddtfm.experiments.stages import Dataset
from meddtfm.models.segmenters import build_segmenter
from meddtfm.models.ukan import FrozenTeacher
from meddtfm.training.flow_matching import MedDTFMTask

from .baselines import ENV, timed, trainer
from .training import THREADS

NO_DT = "nodt"


def build_variants(preset_name: str, dataset: str, only: list[str] | None) -> tuple[dict, int]:
    """Per selected variant: its training ``step(batch, i)`` and its batches (the same images for every variant,
    with the references its task attached); and the budget's steps."""
    preset = load_preset(preset_name)
    chosen = [v for v in preset.variants if only is None or v.name in only or v.name == NO_DT]
    missing = sorted(set(only or ()) - {v.name for v in chosen})
    if missing or not any(v.name == NO_DT for v in chosen):
        raise SystemExit(f"preset {preset_name} has no variant(s) {', '.join(missing or [NO_DT])}")
    spec = Dataset(preset, dataset, ["data.num_workers=0"], Path(os.devnull))
    steps, runs = {}, {}
    for v in chosen:
        cfg = spec.generator(v.overrides, 0, Path("teacher.safetensors"), Path(os.devnull), "meddtfm").cfg
        train_set = build_dataset(cfg.data, "train", cfg.seed)
        torch.manual_seed(cfg.seed)
        teacher = (FrozenTeacher(build_segmenter(cfg.encoder, train_set.num_channels, train_set.num_classes))
                   if cfg.encoder.checkpoint else None)
        task = MedDTFMTask(cfg, train_set, teacher, ENV)
        loader = DataLoader(train_set, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(0))
        runs[v.name] = trainer(task, cfg)[0], [b for b, _ in zip(loader, range(3))]
        steps[v.name] = cfg.train.steps
    if len(set(steps.values())) != 1:
        raise SystemExit(f"the variants' budgets differ: {steps}")
    return runs, next(iter(steps.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="ablation preset (meddtfm reproduce ablation --preset)")
    parser.add_argument("--dataset", default="lgg")
    parser.add_argument("--only", default=None, help="comma-separated variants (nodt is always added)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    runs, steps = build_variants(args.preset, args.dataset, args.only.split(",") if args.only else None)
    names, seconds = list(runs), {n: [] for n in runs}
    for k in range(args.warmup + args.rounds):
        index = max(k - args.warmup, 0) * steps // args.rounds
        for name in names[k % len(names):] + names[:k % len(names)]:
            step, batches = runs[name]
            s = timed(step, batches[k % len(batches)], index)
            if k >= args.warmup:
                seconds[name].append(s)
        print(f"  round {k + 1}/{args.warmup + args.rounds} (step index {index}), load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    shape = runs[NO_DT][1][0]["image"].shape
    batch, base = shape[0], statistics.mean(seconds[NO_DT])
    print(f"\nRecipes of ablation preset {args.preset}, {args.dataset}, {tuple(shape[1:])} images, "
          f"batch {batch}, {THREADS} torch thread, random-init teacher; mean step time over step indices 0..{steps} "
          f"({args.rounds} rounds, order alternating)\n")
    print("| variant | s / step | images / s | overhead vs nodt |")
    print("|---|---|---|---|")
    for name in names:
        mean = statistics.mean(seconds[name])
        print(f"| {name} | {mean:.3f} | {batch / mean:.2f} | {mean / base - 1:+.1%} |")


if __name__ == "__main__":
    main()
