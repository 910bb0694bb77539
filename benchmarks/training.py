"""Cost and first effect of distillation and of the adversarial term (issue: Med-DT-FM training).

    python -m benchmarks.training --resolution 64 --throughput-steps 30 --budget-minutes 5

Per dataset (shared LGG and ISIC; a U-KAN teacher is pretrained first for ``--teacher-minutes`` and
kept in ``--work``):

* throughput: training img/s and peak RSS of ``L_FM`` alone, ``+ L_DT`` and ``+ L_DT + L_adv``, each
  in its own process (so peak memory is its own), alternating the configurations over ``--repeats``;
* effect: validation ``L_FM`` (fixed noise and times) after an equal wall-clock budget for
  ``lambda = 0`` ("Ours (no DT)") and ``lambda > 0`` (Med-DT-FM), adversarial term off in both.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import resource
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ROOTS = {"lgg": SHARED / "lgg" / "kaggle_3m", "isic2019": SHARED / "isic2019"}
THREADS = 1  # one intra-op thread: on a shared 2-core machine, 2 threads thrash under any other load
VARIANTS = {
    "L_FM": ["flow.dt_weights=[0,0,0,0]", "flow.adv_weight=0"],
    "L_FM + L_DT": ["flow.adv_weight=0"],
    "L_FM + L_DT + L_adv": ["flow.adv_start_step=0"],
}


def _base(dataset: str, resolution: int) -> list[str]:
    return [f"data.root={ROOTS[dataset]}", f"data.resolution={resolution}", "data.batch_size=8", "data.num_workers=1",
            "train.log_every=10", "train.sample_every=100000000", "train.checkpoint_every=100000000"]


def _child(args: tuple) -> dict:
    """Train in this (spawned) process; returns the loop's result and this process's peak RSS."""
    dataset, overrides, out = args
    import torch

    torch.set_num_threads(THREADS)
    from meddtfm.config import load_config
    from meddtfm.data import build_dataset
    from meddtfm.models.segmenters import load_teacher
    from meddtfm.training.distributed import DistEnv
    from meddtfm.training.flow_matching import MedDTFMTask
    from meddtfm.training.loop import train

    cfg = load_config(ROOT / "configs" / f"{dataset}.yaml", overrides)
    torch.manual_seed(cfg.seed)
    train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    teacher = load_teacher(cfg.encoder.checkpoint)[0] if cfg.encoder.checkpoint else None
    task = MedDTFMTask(cfg, train_set, teacher, DistEnv(0, 1, torch.device("cpu")))
    result = train(task, cfg, train_set, val_set, DistEnv(0, 1, torch.device("cpu")), Path(out))
    val = [float(r["value"]) for r in csv.DictReader(open(Path(out) / "metrics.csv")) if r["name"] == "fm_loss"]
    return {"steps": result.step, "seconds": result.seconds, "img_per_s": result.step * cfg.data.batch_size / result.seconds,
            "val_fm": val[-1] if val else float("nan"), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _call(queue, fn, args) -> None:
    try:
        queue.put(fn(args))
    except BaseException as err:  # hand the failure to the parent
        queue.put(RuntimeError(f"{fn.__name__} failed: {err!r}"))
        raise


def isolated(ctx, fn, args: tuple):
    """``fn(args)`` in a fresh (non-daemon, so DataLoader workers work) process: its peak RSS is its own."""
    return isolated_all(ctx, fn, [args])[0]


def isolated_all(ctx, fn, jobs: list[tuple]) -> list:
    """``fn(args)`` for every ``args`` in ``jobs``, all at once, each in its own fresh non-daemon process."""
    started = []
    for args in jobs:
        queue = ctx.SimpleQueue()
        proc = ctx.Process(target=_call, args=(queue, fn, args))
        proc.start()
        started.append((queue, proc))
    results = [queue.get() for queue, _ in started]
    for _, proc in started:
        proc.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _run(ctx, dataset: str, overrides: list[str], out: Path) -> dict:
    return isolated(ctx, _child, (dataset, overrides, str(out)))


def teacher_for(ctx, dataset: str, resolution: int, minutes: float, work: Path) -> Path:
    """Pretrain (once; reused from ``work``) a default-width U-KAN on the dataset's masks."""
    out = work / f"teacher-{dataset}-{resolution}"
    if not (out / "best.safetensors").is_file():
        isolated(ctx, _pretrain, (dataset, resolution, minutes, str(out)))
    return out / "best.safetensors"


def _pretrain(args: tuple) -> None:
    dataset, resolution, minutes, out = args
    import torch

    torch.set_num_threads(THREADS)
    from meddtfm.config import load_config
    from meddtfm.data import build_dataset
    from meddtfm.training.distributed import DistEnv
    from meddtfm.training.loop import train
    from meddtfm.training.segmentation import SegmentationTask

    cfg = load_config(ROOT / "configs" / f"{dataset}.yaml", _base(dataset, resolution) + [
        "train.steps=100000000", f"train.max_minutes={minutes}", "train.lr=1e-3", "train.betas=[0.9,0.999]",
        "train.warmup_steps=20", "train.val_every=100000000"])
    torch.manual_seed(cfg.seed)
    train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    train(SegmentationTask(cfg, train_set), cfg, train_set, val_set, DistEnv(0, 1, torch.device("cpu")), Path(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--datasets", nargs="+", default=list(ROOTS))
    parser.add_argument("--throughput-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=5.0)
    parser.add_argument("--teacher-minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-training")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    throughput, effect = [], []
    for dataset in args.datasets:
        if not ROOTS[dataset].is_dir():
            raise SystemExit(f"shared data for {dataset} is absent: expected {ROOTS[dataset]}")
        teacher = teacher_for(ctx, dataset, args.resolution, args.teacher_minutes, args.work)
        base = _base(dataset, args.resolution) + [f"encoder.checkpoint={teacher}", "train.val_every=100000000"]
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for name, extra in VARIANTS.items():
                    steps = [f"train.steps={args.throughput_steps}", "train.warmup_steps=1"]
                    runs[name].append(_run(ctx, dataset, base + steps + extra, Path(tmp) / f"{name}-{r}".replace(" ", "")))
            for name, rs in runs.items():
                throughput.append((dataset, name, statistics.median(x["img_per_s"] for x in rs),
                                   max(x["peak_rss_mb"] for x in rs)))
            for name, extra in (("no DT (lambda=0)", VARIANTS["L_FM"]), ("Med-DT-FM (lambda=0.5)", VARIANTS["L_FM + L_DT"])):
                budget = ["train.steps=100000000", f"train.max_minutes={args.budget_minutes}", "train.warmup_steps=100"]
                res = _run(ctx, dataset, base + budget + extra, Path(tmp) / f"effect-{name[:5]}".replace(" ", ""))
                effect.append((dataset, name, res["steps"], res["val_fm"]))
    print(f"\nTraining throughput at {args.resolution} px, batch 8, CPU ({THREADS} torch thread), median of {args.repeats} alternating runs "
          f"of {args.throughput_steps} steps (the first steps' start-up included)\n")
    print("| dataset | objective | img/s | ratio to L_FM | peak RSS (MB) |\n|---|---|---|---|---|")
    for dataset, name, ips, rss in throughput:
        ref = next(t[2] for t in throughput if t[0] == dataset and t[1] == "L_FM")
        print(f"| {dataset} | {name} | {ips:.1f} | {ips / ref:.2f} | {rss:.0f} |")
    print(f"\nValidation L_FM (fixed noise and t) after {args.budget_minutes} min of training each, L_adv off\n")
    print("| dataset | model | steps | val L_FM |\n|---|---|---|---|")
    for dataset, name, steps, val in effect:
        print(f"| {dataset} | {name} | {steps} | {val:.4f} |")


if __name__ == "__main__":
    main()
