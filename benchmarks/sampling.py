"""Sampling speed and memory of the default-size generator vs NFE and solver (issue: Synthesis).

    python -m benchmarks.sampling [--resolution 64 --batch 8 --repeats 3]

A ``VelocityNet`` with ``GeneratorConfig`` defaults (4 MRI channels, 3 mask classes, no reference path)
with randomly initialised weights: speed and memory do not depend on the weights' values. Each row
times ``meddtfm.flow.sampling.generate`` (mask-conditioned, guidance scale 1 unless stated: one forward
per NFE) over ``--batch`` images, best of ``--repeats`` after one warm-up forward. The floor is the
same network called once (one evaluation per image, no solver or condition encoding: what a one-pass
generator of equal width costs). A ``distill-steps`` model samples as the ``euler`` rows at scale 1 with
NFE = its k (adversarial, reflow); the ``meanflow`` rows add its duration embedding (``flow.few_step``).
The ``pix2pixhd`` row is the Table 1 GAN baseline's generator (``GANConfig`` defaults, same channels and
classes) in its one pass; the last line gives the 1-NFE few-step throughput (``euler``, NFE 1, and
``meanflow``, NFE 1) as a ratio to it. Every row runs in a fresh process, so that memory is measured
alone: peak memory is the Linux peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``
after the warm-up) minus the resident set after building the model, i.e. the working memory of
sampling (activations, solver state, allocator caches), not the weights or the libraries.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from meddtfm.config import GANConfig, GeneratorConfig
from meddtfm.flow.few_step import few_step_sample
from meddtfm.flow.sampling import ConditionInputs, Guidance, SolverSpec, generate, seeded_noise
from meddtfm.models.generator import build_generator
from meddtfm.training.gan import build_baseline

NFES = (1, 2, 4, 8, 16, 50)
ONE_PASS = {"floor": "one-pass floor (same net, 1 call)", "pix2pixhd": "pix2pixHD generator (one pass)"}


def resident_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process in KiB, from /proc/self/status."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


@torch.no_grad()
def run_row(method: str, nfe: int, scale: float, b: int, s: int, repeats: int) -> dict:
    """Best seconds per batch and peak working memory (MiB) of one configuration; ``method`` floor: one call
    of our network, pix2pixhd: one pass of the GAN baseline's generator."""
    torch.manual_seed(0)
    mask = torch.zeros(b, 3, s, s)
    mask[:, :, s // 4:s // 2, s // 4:s // 2] = 1
    if method == "pix2pixhd":
        net = build_baseline("pix2pixhd", GANConfig(), image_channels=4, mask_classes=3).eval()
        base = resident_kib("VmRSS")
        net.generate(mask)  # warm-up

        def run() -> object:
            return net.generate(mask)
        return _measure(run, net, base, repeats)
    cfg = GeneratorConfig(duration_embedding=method == "meanflow")
    net = build_generator(cfg, image_channels=4, mask_classes=3).eval()
    base = resident_kib("VmRSS")
    x0, encoded = seeded_noise(range(b), (4, s, s)), net.condition(mask, None, b)
    net(x0, torch.zeros(b), encoded)  # warm-up
    if method == "floor":
        def run() -> object:
            return net(x0, torch.zeros(b), encoded)
    elif method == "meanflow":
        def run() -> object:
            return few_step_sample(net, x0, encoded, nfe)
    else:
        def run() -> object:
            return generate(net, x0, ConditionInputs(b, mask), SolverSpec(method, nfe), Guidance(scale))
    return _measure(run, net, base, repeats)


def _measure(run: Callable[[], object], net: torch.nn.Module, base: int, repeats: int) -> dict:
    """Best of ``repeats`` seconds of ``run()``, its peak working memory over ``base`` KiB, ``net``'s M params."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    return {"seconds": best, "mib": (resident_kib("VmHWM") - base) / 1024, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--row", nargs=3, metavar=("METHOD", "NFE", "CFG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = ["--resolution", str(args.resolution), "--batch", str(args.batch), "--repeats", str(args.repeats)]
    if args.row:
        method, nfe, scale = args.row[0], int(args.row[1]), float(args.row[2])
        print(json.dumps(run_row(method, nfe, scale, args.batch, args.resolution, args.repeats)))
        return
    configs = [("floor", 1, 1.0)] + [(m, n, 1.0) for m in ("euler", "heun") for n in NFES] + [("heun", 8, 2.0)]
    configs += [("meanflow", n, 1.0) for n in (1, 2, 4)] + [("pix2pixhd", 1, 1.0)]
    rows, speed = [], {}
    for method, nfe, scale in configs:
        if method == "heun" and nfe % 2:
            rows.append(f"| heun | 1 | {nfe} | - | - | - | - (Heun takes 2 evaluations per step) |")
            continue
        row = [sys.executable, "-m", "benchmarks.sampling", *sizes, "--row", method, str(nfe), str(scale)]
        r = json.loads(subprocess.run(row, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        name = ONE_PASS.get(method, method)
        evaluations = nfe * (2 if scale != 1 else 1)
        speed[method, nfe, scale] = args.batch / r["seconds"]
        rows.append(f"| {name} | {'-' if method in ONE_PASS else f'{scale:g}'} | {nfe} | {evaluations} | "
                    f"{r['seconds']:.3f} | {speed[method, nfe, scale]:.2f} | {r['mib']:.0f} ({r['params']:.2f} M) |")
        print(rows[-1], file=sys.stderr)
    print(f"\nSampling, {args.resolution} px, batch {args.batch}, default GeneratorConfig and GANConfig (random "
          f"init), {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}; best of {args.repeats}\n")
    print("| solver | CFG scale | NFE | evaluations / image | s / batch | images / s | peak memory, MiB (params) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    gan = speed["pix2pixhd", 1, 1.0]
    print(f"\n1-NFE few-step throughput / pix2pixHD one pass: euler {speed['euler', 1, 1.0] / gan:.2f}x, "
          f"meanflow {speed['meanflow', 1, 1.0] / gan:.2f}x")


if __name__ == "__main__":
    main()
