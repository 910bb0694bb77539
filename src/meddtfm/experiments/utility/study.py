"""The utility study from request to files: ``Utility.prepare`` checks everything, ``Utility.run`` does the work.

``run`` trains the teachers, then the generators (``parallel.train_all``), draws the synthetic sets
(``meddtfm.augmentation``, resumable), trains every arm's U-Net, scores each on the real test split
(``evaluation.segmentation.SegmenterScore``, cached beside its weights) and writes ``utility.md``,
``utility.csv`` and ``utility.png``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ...augmentation import AugmentFolder, AugmentSpec, MaskVariation, augment, dataset_sources
from ...config import ConfigError, save_config
from ...data import build_dataset, loader_workers
from ...evaluation.consistency import load_eval_segmenter
from ...evaluation.generation import load_generate
from ...evaluation.regions import BraTSRegions, has_brats_classes
from ...evaluation.segmentation import SegmenterScore
from ...files import atomic_write_text
from ...training.distributed import pick_device
from ..figures import bar_chart, save_column
from ..parallel import TrainingFailed, train_all
from ..runs import Trainers, check_reuse
from ..scope import pick_datasets, pick_subset, scoped_overrides
from .plan import Plan, Synthetic, plan_dataset
from .preset import Preset, load_preset
from .tables import mean_std, write_tables

log = logging.getLogger(__name__)
SCORE_FILE = "test_score.json"


@dataclass
class Utility:
    """A checked request: the preset, one plan per dataset, the output folder, trainings at once."""

    name: str
    preset: Preset
    plans: list[Plan]
    out: Path
    jobs: int

    @classmethod
    def prepare(cls, name: str, out: str | Path, datasets: str | None, generators: str | None,
                overrides: Sequence[str], jobs: int = 1) -> Utility:
        """Resolve and check the request, train nothing."""
        preset = load_preset(name)
        preset.generators = pick_subset("--generators", preset.generators, generators)
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: give at least 1")
        names = pick_datasets(name, list(preset.datasets), datasets)
        preset.datasets = {n: preset.datasets[n] for n in names}
        user, out_dir = scoped_overrides(overrides, names), Path(out).resolve()
        plans = [plan_dataset(preset, n, user[n], out_dir) for n in names]
        for run in (r for plan in plans for r in plan.runs()):
            check_reuse(run)
        return cls(name, preset, plans, out_dir, jobs)

    def run(self, trainers: Trainers) -> str:
        """Every stage; returns ``utility.md``."""
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.preset, self.out / "preset.yaml")
        self._train([(r, f"{p.name}: {r.out.name} (pretrain-encoder --model ukan)")
                     for p in self.plans for r in p.teachers], trainers, "teachers")
        self._train([(r, f"{p.name}: {r.out.parent.name}/{r.out.name} (train --model {r.model})")
                     for p in self.plans for r in p.generators], trainers, "generators")
        for plan in self.plans:
            for s in plan.synthetic:
                self.draw(s)
        self._train([(r, f"{p.name}: U-Net {a.label} seed {k}") for p in self.plans for a in p.arms
                     for k, r in a.runs.items()], trainers, "U-Nets")
        scores = {p.name: {a.label: [self.score(p, r.out) for r in a.runs.values()] for a in p.arms}
                  for p in self.plans}
        charts = [bar_chart({label: mean_std([s["dice_present/mean"] for s in rs]) for label, rs in by_arm.items()},
                            "lesion-present Dice (mean ± std over U-Net seeds)",
                            f"{name}: U-Net on the real test split, per training set")
                  for name, by_arm in scores.items()]
        save_column(charts, self.out / "utility.png")
        return write_tables(self.out, self.preset, self.plans, scores, self.name)

    def _train(self, runs: list, trainers: Trainers, desc: str) -> None:
        failed = train_all(runs, self.jobs, trainers, desc)
        if failed:
            raise TrainingFailed(failed)

    def draw(self, s: Synthetic) -> None:
        """Draw (or complete) the synthetic set ``s`` with its generator's final weights."""
        gen, e = s.generator, self.preset.synthetic
        device = pick_device(gen.cfg.train.device)
        weights = gen.out / "final.safetensors"
        generate, info = load_generate(weights, "noise", device, nfe=e.nfe, solver=e.solver, cfg_mask=e.cfg)
        channels, classes = tuple(info["channel_names"]), tuple(info["class_names"])
        data = dataclasses.replace(gen.cfg.data, augment=False)
        sources = dataset_sources(data, "train", (channels, classes, data.resolution))
        count = math.ceil(s.multiple * len(sources))
        variation = MaskVariation.parse(e.vary)
        settings = {"model": info["model"], "mode": "noise", "nfe": "" if info.get("deterministic") else e.nfe,
                    "solver": "" if info.get("deterministic") else e.solver,
                    "cfg": "" if info.get("deterministic") else e.cfg, "checkpoint": str(weights)}
        request = {**settings, "count": count, "seed": s.seed, "batch_size": e.batch_size, "variation": str(variation),
                   "masks": "dataset:train", "min_dice": None, "t0": None}
        log.info("%s: %d synthetic images for the %d training masks", s.folder, count, len(sources))
        augment(generate, settings, sources, AugmentSpec(count, "noise", s.seed, e.batch_size, variation),
                AugmentFolder(s.folder, request, classes, channels))

    def score(self, plan: Plan, run_dir: Path) -> dict[str, float]:
        """The U-Net of ``run_dir`` (its best weights by validation Dice) on the real test split, cached; with
        BraTS's classes also the WT / TC / ET region scores (``evaluation.regions``)."""
        weights = run_dir / "best.safetensors"
        key = {"weights": str(weights), "mtime": weights.stat().st_mtime_ns, "split": "test"}
        cached = run_dir / SCORE_FILE
        if cached.is_file() and json.loads(cached.read_text())["key"] == key:
            return json.loads(cached.read_text())["scores"]
        data = dataclasses.replace(plan.data.data, augment=False, extra_train=[], train_fraction=1.0)
        test = build_dataset(data, "test")
        device = pick_device(plan.data.train.device)
        net = load_eval_segmenter(weights, test.num_channels, test.class_names, test.channel_names,
                                  data=dataclasses.asdict(data)).to(device)
        scorers = [SegmenterScore(net, test.class_names),
                   *([BraTSRegions(net, test.class_names)] if has_brats_classes(test.class_names) else [])]
        loader = DataLoader(test, batch_size=self.preset.evaluation.batch_size, shuffle=False,
                            num_workers=loader_workers(data.num_workers))
        with torch.no_grad():
            for batch in loader:
                for scorer in scorers:
                    scorer.update(batch["image"], batch["mask"], batch["has_mask"])
        scores = {k: v for scorer in scorers for k, v in scorer.compute().items()}
        atomic_write_text(cached, json.dumps({"key": key, "scores": scores}, indent=1))
        return scores

