"""Med-DT-FM against the MONAI peer, side by side in one run: a markdown table and a JSON file.

    python -m benchmarks.run --suite smoke   # built-in phantoms, tiny networks: < 1 min (CI)
    python -m benchmarks.run --suite cpu     # shared LGG and ISIC at 64 px, 2 seeds: ~30 min on 2 cores

The peer (``benchmarks.peer``) is MONAI's ``DiffusionModelUNet`` with the mask concatenated to its
input and ``RFlowScheduler``, its parameter count matched to our generator's (+-10%). Every figure is a
ratio ours / reference measured in this run:

* training and sampling img/s: in this process, alternating step by step (``benchmarks.throughput``);
  also distillation (lambda > 0 vs 0) and adversarial overheads within ours;
* peak memory, validation ``L_FM`` and FRD after an equal number of steps: in spawned processes, one
  per contender and seed (``benchmarks.quality``);
* DDP 2 gloo processes vs 1 and loader-only vs training-step throughput (``benchmarks.scaling``).

Every process uses one torch thread (a 2-core machine shared with other work). With ``--suite cpu`` a
U-KAN teacher per dataset is pretrained first (``--teacher-minutes``, cached in ``--work``), not
counted in any figure; the smoke suite uses a random-init teacher (enough for speed and memory).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import monai
import torch

from .contenders import SUITES, pretrained_teachers
from .quality import quality, frd_unavailable
from .report import ddp_row, dataset_rows, markdown
from .scaling import ddp, loader
from .throughput import throughput
from .training import ROOT, ROOTS, THREADS

SMOKE_FRD = "skipped in the smoke suite (radiomics extraction takes ~15 s even for 4 images)"


def _check(datasets: tuple[str, ...]) -> None:
    if importlib.util.find_spec("einops") is None:
        raise SystemExit("the MONAI peer's attention (DiffusionModelUNet) needs einops: pip install einops")
    missing = [str(ROOTS[d]) for d in datasets if d in ROOTS and not ROOTS[d].is_dir()]
    if missing:
        raise SystemExit(f"shared data absent: {', '.join(missing)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), default="smoke")
    parser.add_argument("--json", type=Path, default=None, help="default: runs/benchmarks/<suite>.json")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-training",
                        help="where pretrained teachers are cached (cpu suite)")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    _check(suite.datasets)
    torch.set_num_threads(THREADS)
    ctx, started, load = mp.get_context("spawn"), time.perf_counter(), os.getloadavg()[0]
    teachers = pretrained_teachers(suite, ctx, args.work)
    frd_reason = SMOKE_FRD if not suite.frd_samples else frd_unavailable()
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for d in suite.datasets:
            print(f"[{d}] throughput, loader, then memory / L_FM / FRD per seed", flush=True)
            r = {"throughput": throughput(suite, d, suite.seeds[0], teachers[d]), "loader_img_s": loader(suite, d)}
            r["quality"] = quality(ctx, suite, d, teachers[d], 0 if frd_reason else suite.frd_samples, Path(tmp))
            rows += dataset_rows(d, r["throughput"], r["quality"], r["loader_img_s"], suite.nfe, suite.quality_steps,
                                 frd_reason)
            results[d] = r
        results["ddp"] = ddp(ctx, suite, suite.datasets[0], teachers[suite.datasets[0]], Path(tmp))
    rows.append(ddp_row(suite.datasets[0], results["ddp"]))
    tp = results[suite.datasets[0]]["throughput"]
    meta = {
        "suite": dataclasses.asdict(suite), "wall_s": time.perf_counter() - started,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {THREADS} torch thread "
                   f"per process, 1-min load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end",
        "versions": f"torch {torch.__version__}, monai {monai.__version__}, python {platform.python_version()}",
        "params_M": {k: {"inference": v["params_M"], "trained": v["trained_params_M"]} for k, v in tp.items()},
        "teachers": teachers,
    }
    print(f"\nSuite {suite.name}: {', '.join(suite.datasets)}, seeds {list(suite.seeds)}; {meta['machine']}; "
          f"{meta['versions']}; wall time {meta['wall_s']:.0f} s")
    print(f"Parameters (M), inference / trained: ours {tp['ours']['params_M']:.3f} / {tp['ours']['trained_params_M']:.3f} "
          f"(generator / + projectors), peer {tp['peer']['params_M']:.3f} (MONAI DiffusionModelUNet + RFlowScheduler); "
          f"throughput: medians of {suite.rounds} alternating rounds after {suite.warmup} warm-up; sampling: ours Heun, "
          f"peer MONAI Euler, same NFE; quality: {suite.quality_steps} steps each, mean of seeds (ratio: geometric mean)\n")
    print(markdown(rows))
    path = args.json or ROOT / "runs" / "benchmarks" / f"{suite.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks.run", *sys.argv[1:]])
    rows_json = [dataclasses.asdict(r) for r in rows]
    path.write_text(json.dumps({"command": command, "meta": meta, "rows": rows_json, "results": results}, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
