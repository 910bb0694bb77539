"""One training epoch of each dataset through the real DataLoader: seconds and images per second.

    python -m benchmarks.data_loading --resolution 128 --workers 2

Datasets: the built-in phantoms and, when ``../shared/data`` is present, BraTS 2021, ISIC 2019 and
LGG with their presets. Augmentation is on (training split), as in training.
"""
from __future__ import annotations

import argparse
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
    return {"dataset": name, **loader_throughput(build_dataset(cfg.data, "train", cfg.seed), batch, workers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    rows = [epoch_time(n, r, args.resolution, args.workers, args.batch) for n, r in SETS.items() if r is None or r.is_dir()]
    print(f"\nOne training epoch at {args.resolution} px, batch {args.batch}, {args.workers} workers, "
          f"augmentation on, {torch.get_num_threads()} torch threads\n")
    print("| dataset | train samples | seconds | img/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['train_samples']} | {r['seconds']:.1f} | {r['img_per_s']:.0f} |")


if __name__ == "__main__":
    main()
