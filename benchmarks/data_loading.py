"""Two training epochs of each dataset through the real DataLoader: seconds and images per second.

    python -m benchmarks.data_loading --resolution 128 --workers 2

Datasets: the built-in phantoms and, when ``../shared/data`` is present, BraTS 2021, ISIC 2019 and
LGG with their presets. Augmentation is on (training split), as in training. The scan and slice
caches start empty (a temporary ``MEDDTFM_CACHE``): the scan is timed on its own, epoch 1 fills the
BraTS slice cache, epoch 2 reads it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from meddtfm.config import load_config
from meddtfm.data import build_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = {"phantoms": None, "brats2021": SHARED / "brats2021", "isic2019": SHARED / "isic2019", "lgg": SHARED / "lgg" / "kaggle_3m"}


def loader_throughput(ds: Dataset, batch: int, workers: int, max_batches: int | None = None) -> dict:
    """Images per second of a shuffled DataLoader over ``ds``: a whole epoch, or its first ``max_batches``."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=False)
    start = time.perf_counter()
    n = sum(b["image"].shape[0] for b in islice(loader, max_batches))
    seconds = time.perf_counter() - start
    return {"train_samples": n, "seconds": seconds, "img_per_s": n / seconds}


def epoch_time(name: str, root: Path | None, resolution: int, workers: int, batch: int) -> dict:
    overrides = [f"data.resolution={resolution}", f"data.num_workers={workers}", f"data.batch_size={batch}"]
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", overrides + ([f"data.root={root}"] if root else []))
    start = time.perf_counter()
    ds = build_dataset(cfg.data, "train", cfg.seed)
    scan = time.perf_counter() - start
    first, second = (loader_throughput(ds, batch, workers) for _ in range(2))
    return {"dataset": name, "scan_s": scan, "train_samples": first["train_samples"], "epoch1_s": first["seconds"],
            "epoch2_s": second["seconds"], "img_per_s": second["img_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDDTFM_CACHE"] = cache
        rows = [epoch_time(n, r, args.resolution, args.workers, args.batch) for n, r in SETS.items()
                if r is None or r.is_dir()]
    print(f"\nTraining epochs at {args.resolution} px, batch {args.batch}, {args.workers} workers, "
          f"augmentation on, {torch.get_num_threads()} torch threads, empty caches at the start\n")
    print("| dataset | train samples | scan s | epoch 1 s | epoch 2 s | epoch 2 img/s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['train_samples']} | {r['scan_s']:.1f} | {r['epoch1_s']:.1f} | {r['epoch2_s']:.1f} "
              f"| {r['img_per_s']:.0f} |")


if __name__ == "__main__":
    main()
