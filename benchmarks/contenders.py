"""What the suite compares and on what: its two suites, their configurations, data, and the tasks.

Contenders: ``peer`` (``benchmarks.peer``, MONAI) and our ``MedDTFMTask`` in three variants,
``ours`` (``L_FM + L_DT``, the adversary off as before ``flow.adv_start_step``), ``ours no-DT``
(``lambda = 0``) and ``ours +adv`` (``L_adv`` from step 0). Both sides are mask-conditioned only:
captions are blanked (the peer has no caption path, so ours builds none either).
"""
from __future__ import annotations

import dataclasses
from multiprocessing.context import BaseContext
from pathlib import Path

import torch

from meddtfm.config import Config, load_config, to_dict
from meddtfm.data import build_dataset
from meddtfm.data.base import MedicalDataset
from meddtfm.models.generator import build_generator
from meddtfm.models.segmenters import build_segmenter, load_teacher
from meddtfm.models.ukan import FrozenTeacher
from meddtfm.training.distributed import DistEnv
from meddtfm.training.flow_matching import MedDTFMTask

from .peer import PeerTask, count
from .training import ROOT, ROOTS, teacher_for

OURS = {
    "ours": ["flow.adv_weight=0"],
    "ours no-DT": ["flow.dt_weights=[0,0,0,0]", "flow.adv_weight=0"],
    "ours +adv": ["flow.adv_start_step=0"],
}
CPU = DistEnv(0, 1, torch.device("cpu"))


@dataclasses.dataclass(frozen=True)
class Suite:
    """Sizes of one suite. ``overrides`` apply to every run; the rest say how much of each figure to measure."""

    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    warmup: int  # untimed training steps and samples per contender before the timed rounds
    rounds: int  # timed rounds: one training step and one sample of each contender per round
    nfe: int  # velocity evaluations per sample (ours: Heun, nfe / 2 steps; peer: MONAI's Euler, nfe steps)
    quality_steps: int  # optimiser steps of each contender before its validation L_FM (and FRD)
    frd_samples: int  # images per FRD set; 0 skips FRD
    ddp_steps: int
    loader_batches: int
    teacher_minutes: float  # > 0: pretrain (once, cached) a U-KAN teacher per dataset; 0: random-init teacher


_SMOKE_MODEL = ("generator.base_channels=8", "generator.channel_mult=[1,2,4,4]", "generator.num_res_blocks=1",
                "generator.cond_channels=[8,8,8,8]", "generator.time_dim=32", "generator.attention_head_dim=8",
                "encoder.widths=[4,8,16,24,32]", "flow.disc_channels=8", "flow.disc_layers=2")
_RUN = ("train.log_every=100000000", "train.sample_every=100000000", "train.checkpoint_every=100000000",
        "train.val_every=100000000", "train.warmup_steps=20")
SUITES = {
    "smoke": Suite("smoke", ("phantoms",), (0,), (*_SMOKE_MODEL, *_RUN, "data.resolution=32", "data.phantom_count=40",
                   "data.batch_size=4", "data.num_workers=0", "flow.val_batches=1"),
                   warmup=1, rounds=2, nfe=2, quality_steps=3, frd_samples=0, ddp_steps=2, loader_batches=4,
                   teacher_minutes=0.0),
    "cpu": Suite("cpu", ("lgg", "isic2019"), (0, 1), (*_RUN, "data.resolution=64", "data.batch_size=8",
                 "data.num_workers=1", "flow.val_batches=8"),
                 warmup=2, rounds=5, nfe=8, quality_steps=80, frd_samples=32, ddp_steps=12, loader_batches=30,
                 teacher_minutes=3.0),
}


def config(suite: Suite, dataset: str, seed: int, extra: list[str] | tuple[str, ...] = ()) -> Config:
    """``configs/<dataset>.yaml`` with the shared data root, the suite's overrides, then ``extra``."""
    root = [f"data.root={ROOTS[dataset]}"] if dataset in ROOTS else []
    return load_config(ROOT / "configs" / f"{dataset}.yaml", [*root, *suite.overrides, *extra], seed=seed)


def data(cfg: Config) -> tuple[MedicalDataset, MedicalDataset]:
    """Train and validation splits with their captions blanked (mask conditioning only)."""
    splits = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    for split in splits:
        split.records = [dataclasses.replace(r, caption="") for r in split.records]
    return splits


def teacher(cfg: Config, dataset: MedicalDataset) -> FrozenTeacher:
    """The pretrained U-KAN of ``encoder.checkpoint``, else a random-init one (enough for speed and memory)."""
    if cfg.encoder.checkpoint:
        return load_teacher(cfg.encoder.checkpoint)[0]
    torch.manual_seed(cfg.seed)
    return FrozenTeacher(build_segmenter(cfg.encoder, dataset.num_channels, dataset.num_classes))


def generator_params(cfg: Config, dataset: MedicalDataset, frozen: FrozenTeacher) -> int:
    """Parameters of the generator ``MedDTFMTask`` builds for ``dataset`` (mask only), counted on the meta device."""
    gen_cfg = type(cfg.generator)(**{**to_dict(cfg.generator), "vocab_size": 0})
    with torch.device("meta"):
        ref = frozen.feature_channels[0] if cfg.flow.reference else 0
        return count(build_generator(gen_cfg, dataset.num_channels, dataset.num_classes, ref))


def build(contender: str, suite: Suite, dataset: str, seed: int, extra: list[str] | tuple[str, ...] = (),
          env: DistEnv = CPU) -> tuple[Config, MedicalDataset, MedicalDataset, MedDTFMTask | PeerTask]:
    """Config, train and validation splits, and the task of ``contender`` (``peer`` or a key of ``OURS``)
    for the process ``env``."""
    cfg = config(suite, dataset, seed, [*extra, *OURS.get(contender, OURS["ours"])])
    train_set, val_set = data(cfg)
    frozen = teacher(cfg, train_set)
    torch.manual_seed(cfg.seed)
    if contender == "peer":
        return cfg, train_set, val_set, PeerTask(cfg, train_set, generator_params(cfg, train_set, frozen))
    return cfg, train_set, val_set, MedDTFMTask(cfg, train_set, frozen, env)


def pretrained_teachers(suite: Suite, ctx: BaseContext, work: Path) -> dict[str, list[str]]:
    """Per dataset, the override naming its teacher: pretrained once for ``suite.teacher_minutes`` (cached in
    ``work``, ``benchmarks.training.teacher_for``), or none (random-init teacher) when that is 0."""
    if suite.teacher_minutes <= 0:
        return {d: [] for d in suite.datasets}
    resolution = config(suite, suite.datasets[0], 0).data.resolution
    return {d: [f"encoder.checkpoint={teacher_for(ctx, d, resolution, suite.teacher_minutes, work)}"]
            for d in suite.datasets}
