"""Peak training memory, validation ``L_FM`` and FRD of ours and the peer after an equal number of steps.

Each (dataset, seed, contender) trains in its own spawned process with one torch thread
(``benchmarks.training.isolated_all``; ours and the peer of a seed run at the same time) through
``meddtfm.training.loop.train``: same data, resolution, batch, Adam, warm-up, clipping, EMA and steps.

* peak memory: the process's peak resident set (``VmHWM``, reset after the imports) minus its resident
  set before the data, teacher and networks were built: weights (the teacher's included), EMA,
  gradients, optimiser state, activations. DataLoader workers are other processes, alike for both.
* validation ``L_FM``: the EMA network's, on fixed noise and times (the loop's final validation).
* FRD: frd-score's v1 (log of the Frechet radiomics distance; mean over channels) between the first
  ``frd_samples`` validation images and the EMA network's samples for their masks (``FRD_NFE``
  evaluations, per-image seeded noise shared by both contenders).
"""
from __future__ import annotations

import csv
from multiprocessing.context import BaseContext
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from meddtfm.evaluation.distribution import ImageSet, MissingDependencyError, frd, require_frd
from meddtfm.flow.sampling import seeded_noise
from meddtfm.checkpoint import load_weights
from meddtfm.training.loop import train

from .contenders import CPU, Suite, build
from .sampling import resident_kib
from .throughput import sampler
from .training import THREADS, isolated_all

FRD_NFE = 16
CONTENDERS = ("ours", "peer")


def frd_unavailable() -> str | None:
    """Why FRD cannot be computed here (frd-score or PyRadiomics missing), or None."""
    try:
        require_frd()
    except MissingDependencyError as err:
        return str(err)
    return None


def _fit(args: tuple) -> dict:
    """Train one contender in this (spawned) process; its steps, peak memory (MiB), val ``L_FM`` and FRD."""
    suite, dataset, seed, contender, extra, frd_samples, out = args
    torch.set_num_threads(THREADS)
    out = Path(out)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current resident set
    base = resident_kib("VmRSS")
    cfg, train_set, val_set, task = build(contender, suite, dataset, seed, [*extra, f"train.steps={suite.quality_steps}"])
    result = train(task, cfg, train_set, val_set, CPU, out)
    row = {"steps": result.step, "peak_mib": (resident_kib("VmHWM") - base) / 1024}
    with open(out / "metrics.csv") as fh:
        row["val_fm"] = [float(r["value"]) for r in csv.DictReader(fh) if r["name"] == "fm_loss"][-1]
    if frd_samples:
        net = task.nets[task.ema_net]
        net.load_state_dict(load_weights(out / "final.safetensors")[0])
        sample = sampler(task, net, FRD_NFE)
        real = ImageSet(val_set.channel_names, frd_dir=out / "frd-real")
        fake = ImageSet(val_set.channel_names, frd_dir=out / "frd-fake")
        for batch in DataLoader(val_set, batch_size=cfg.data.batch_size):
            images, mask = batch["image"][:frd_samples - real.count], batch["mask"][:frd_samples - real.count]
            if not len(images):
                break
            fake.add(sample(mask, seeded_noise(range(real.count, real.count + len(images)), images.shape[1:])))
            real.add(images)
        row["frd"] = frd(real, fake)["frd/mean"]
    return row


def quality(ctx: BaseContext, suite: Suite, dataset: str, extra: list[str], frd_samples: int,
            work: Path) -> dict[int, dict[str, dict]]:
    """``{seed: {contender: row}}``; ours and the peer of each seed train at the same time."""
    out = {}
    for seed in suite.seeds:
        jobs = [(suite, dataset, seed, c, extra, frd_samples, str(work / f"{dataset}-{seed}-{c}"))
                for c in CONTENDERS]
        out[seed] = dict(zip(CONTENDERS, isolated_all(ctx, _fit, jobs)))
        print(f"  [{dataset}] seed {seed}: " + ", ".join(f"{c} val L_FM {r['val_fm']:.4f}" for c, r in out[seed].items()),
              flush=True)
    return out
