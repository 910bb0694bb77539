"""``meddtfm data inspect``: decode every sample once, report what the dataset holds, draw a grid."""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..config import Config
from ..viz import overlay, save_grid, to_rgb
from . import build_dataset
from .base import MedicalDataset, loader_workers
from .errors import BadSampleError
from .splits import SPLITS


class _Probe(Dataset):
    """Loads records one by one with their native ``(H, W)``; returns the error instead of raising it,
    so workers can report skips."""

    def __init__(self, dataset: MedicalDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.records)

    def __getitem__(self, i: int) -> tuple[dict | None, tuple[int, int] | tuple[str, str]]:
        record = self.dataset.records[i]
        try:
            decoded = self.dataset.decode(record)
            return self.dataset.prepare(record, decoded), decoded.image.shape[1:]
        except BadSampleError as err:
            if self.dataset.cfg.on_bad_sample == "error":
                raise
            return None, (err.path, err.problem)


def _keep(batch: list) -> list:
    return batch


def inspect_dataset(cfg: Config, out: Path, grid_size: int = 16, limit: int = 0) -> dict:
    """Summarise every split of ``cfg.data`` and write ``out/grid.png`` (image | overlay pairs).

    ``limit`` > 0 reads only that many samples per split for the statistics (evenly spaced). A dataset whose
    ``describe`` says more (BraTS) adds ``volumes`` (the whole set: native intensity per sequence, slices per
    class) and each split's ``slices_per_class``. Returns the summary dict that the CLI prints and saves as
    ``summary.yaml``.
    """
    data_cfg = dataclasses.replace(cfg.data, augment=False)
    splits = {s: build_dataset(data_cfg, s, cfg.seed) for s in SPLITS}
    first = next(ds for ds in splits.values())
    summary: dict = {
        "dataset": data_cfg.name, "root": data_cfg.root, "resolution": data_cfg.resolution,
        "channels": list(first.channel_names), "classes": list(first.class_names),
        "splits": {s: {"samples": len(ds), "subjects": len({r.subject_id for r in ds.records})}
                   for s, ds in splits.items()},
    }
    n_ch, n_cls = first.num_channels, first.num_classes
    ch_sum, ch_sq = np.zeros(n_ch), np.zeros(n_ch)
    ch_min, ch_max = np.full(n_ch, np.inf), np.full(n_ch, -np.inf)
    present, pixels = np.zeros(n_cls), np.zeros(n_cls)
    labels, captions, sizes = Counter(), [], Counter()
    skipped = {path: problem for ds in splits.values() for path, problem in ds.skipped.reasons.items()}  # at scan
    n_read = n_masked = 0
    for split, ds in splits.items():
        labels.update(f"{split}/{r.label or 'unlabelled'}" for r in ds.records)
        probe: Dataset = _Probe(ds)
        if limit and len(ds) > limit:
            probe = torch.utils.data.Subset(probe, np.linspace(0, len(ds) - 1, limit).round().astype(int).tolist())
        loader = DataLoader(probe, batch_size=16, num_workers=loader_workers(cfg.data.num_workers), collate_fn=_keep)
        for batch in tqdm(loader, desc=f"inspect {split}", unit="batch", leave=False):
            for sample, info in batch:
                if sample is None:
                    skipped.setdefault(*info)
                    continue
                sizes[f"{info[0]}x{info[1]}"] += 1
                img = sample["image"].double().flatten(1).numpy()
                ch_sum += img.mean(1)
                ch_sq += (img ** 2).mean(1)
                ch_min, ch_max = np.minimum(ch_min, img.min(1)), np.maximum(ch_max, img.max(1))
                mask = sample["mask"].flatten(1).numpy()
                present += mask.any(1)
                pixels += mask.mean(1)
                n_masked += bool(sample["has_mask"])
                n_read += 1
                if sample["caption"] and len(captions) < 5:
                    captions.append(sample["caption"])
    if n_read == 0:
        raise BadSampleError(data_cfg.root or data_cfg.name, "no readable sample in any split")
    mean = ch_sum / n_read
    summary.update({
        "samples_read": n_read,
        "samples_with_mask": n_masked,
        "skipped": len(skipped),
        "skipped_examples": [f"{path}: {problem}" for path, problem in list(skipped.items())[:10]],
        "native_sizes": dict(sizes.most_common(5)),
        "channel_stats": {c: {"mean": round(float(m), 4), "std": round(float(np.sqrt(max(q / n_read - m * m, 0))), 4),
                              "min": round(float(lo), 4), "max": round(float(hi), 4)}
                          for c, m, q, lo, hi in zip(first.channel_names, mean, ch_sq, ch_min, ch_max)},
        "class_frequency": {c: {"samples_with_class": int(p), "pixel_fraction": round(float(px / n_read), 5)}
                            for c, p, px in zip(first.class_names, present, pixels)},
        "labels": dict(sorted(labels.items())),
        "caption_examples": captions,
    })
    described = {s: ds.describe() for s, ds in splits.items()}
    if any(described.values()):  # files beyond the samples (BraTS volumes): the whole set, and slices per split
        summary["volumes"] = build_dataset(data_cfg, "all", cfg.seed).describe()
        for split, facts in described.items():
            if "slices_per_class" in facts:
                summary["splits"][split]["slices_per_class"] = facts["slices_per_class"]
    summary["grid"] = str(write_grid(max(splits.values(), key=len), Path(out) / "grid.png", grid_size))
    return summary


def write_grid(ds: MedicalDataset, path: Path, count: int, cols: int = 4) -> Path:
    """``count`` evenly spaced samples of ``ds`` as (image | mask overlay) pairs, ``cols`` pairs a row."""
    picks = np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int)
    tiles = [[to_rgb(s["image"]), overlay(s["image"], s["mask"])] for s in (ds[int(i)] for i in picks)]
    return save_grid([sum(tiles[i:i + cols], []) for i in range(0, len(tiles), cols)], path)
