"""U-KAN vs MONAI BasicUNet on real masks at an equal wall-clock budget (issue: U-KAN teacher).

    python -m benchmarks.segmenters --minutes 4 --resolution 128

For each dataset (shared LGG FLAIR abnormality, shared ISIC lesions) and each model, trains with
``meddtfm``'s own loop for the same number of minutes on this machine, then reports validation Dice
and IoU on the patient/lesion-disjoint split, training images per second and parameter count.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.training.distributed import DistEnv
from meddtfm.training.loop import train
from meddtfm.training.segmentation import SegmentationTask

ROOT = Path(__file__).resolve().parents[1]
# name: (encoder.model, extra overrides); "ukan-small" matches the MONAI U-Net's parameter count (+-10%);
# "ukan-kanlr" trains the KAN layers at 10 x lr = 1e-2, the U-KAN reference's KAN learning rate
MODELS = {"ukan": ("ukan", []), "ukan-kanlr": ("ukan", ["encoder.kan_lr_scale=10"]),
          "ukan-small": ("ukan", ["encoder.widths=[16,32,64,96,128]"]), "unet": ("unet", [])}
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {"lgg": SHARED / "lgg" / "kaggle_3m", "isic2019": SHARED / "isic2019"}


def run(dataset: str, model: str, minutes: float, resolution: int, batch: int, out: Path) -> dict:
    kind, extra = MODELS[model]
    cfg = load_config(ROOT / "configs" / f"{dataset}.yaml", extra + [
        f"data.root={DATASETS[dataset]}", f"data.resolution={resolution}", f"data.batch_size={batch}",
        "data.num_workers=1", "data.test_fraction=0.0", "data.val_fraction=0.15", f"encoder.model={kind}",
        "train.steps=1000000", f"train.max_minutes={minutes}", "train.lr=1e-3", "train.betas=[0.9,0.999]",
        "train.warmup_steps=20", "train.log_every=50", "train.val_every=1000000", "train.sample_every=1000000",
        "train.checkpoint_every=1000000",
    ])
    torch.manual_seed(cfg.seed)
    train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    task = SegmentationTask(cfg, train_set)
    params = sum(p.numel() for p in task.nets.parameters())
    result = train(task, cfg, train_set, val_set, DistEnv(0, 1, torch.device("cpu")), out)
    metrics = {r.split(",")[2]: float(r.split(",")[3]) for r in (out / "metrics.csv").read_text().splitlines()[1:]
               if ",val," in r}
    return {"dataset": dataset, "model": model, "params_M": params / 1e6, "steps": result.step,
            "img_per_s": result.step * batch / result.seconds, "val_dice": metrics["dice/mean"],
            "val_iou": metrics["iou/mean"], "train_samples": len(train_set), "val_samples": len(val_set)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model and dataset")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    missing = [d for d in args.datasets if not DATASETS[d].is_dir()]
    if missing:
        raise SystemExit(f"shared data absent for {missing}: expected under {SHARED}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for model in args.models:
                rows.append(run(dataset, model, args.minutes, args.resolution, args.batch, Path(tmp) / f"{dataset}-{model}"))
    print(f"\nEqual budget: {args.minutes} min per model on {torch.get_num_threads()} CPU threads, "
          f"{args.resolution} px, batch {args.batch}\n")
    print("| dataset | model | params (M) | steps | train img/s | val Dice | val IoU | train / val samples |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['params_M']:.2f} | {r['steps']} | {r['img_per_s']:.1f} | "
              f"{r['val_dice']:.3f} | {r['val_iou']:.3f} | {r['train_samples']} / {r['val_samples']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
