"""One dataset of a study: its runs' configs, the segmenter stages before the generators, the checks.

Every run's config merges, in order: the dataset's config, the preset's ``common``, the dataset's
overrides and root, the run's own overrides, then the user's ``--set``. Per dataset a study trains the
U-KAN teacher and the evaluation U-Net (``pretrain-encoder``, preset keys ``teacher:`` / ``segmenter:``)
into ``OUT/DATASET/{teacher,segmenter}``, unless they are given as files; then its generators, whose
steps come from the budget and whose ``encoder.checkpoint`` is the teacher when the flow needs one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..config import Config, ConfigError, load_config
from .budget import Budget, sets_steps
from .presets import StudyPreset
from .runs import Run


@dataclasses.dataclass
class Dataset:
    """A dataset of ``preset`` as the user runs it: ``user`` are its ``--set`` overrides, ``folder`` its runs."""

    preset: StudyPreset
    name: str
    user: list[str]
    folder: Path

    def config(self, extra: Sequence[str], seed: int | None) -> Config:
        """The resolved config of a run with overrides ``extra``; ``ConfigError`` names a bad key or value."""
        spec = self.preset.datasets[self.name]
        return load_config(spec.config, [*self.preset.common, *spec.data_overrides(), *extra, *self.user], seed)

    def generator(self, extra: Sequence[str], seed: int | None, teacher: Path, out: Path, model: str) -> Run:
        """A generator run at the preset's budget with ``extra`` overrides (a ``train.steps`` among them or the
        user's wins, for ``budget.check_equal`` to judge)."""
        budget: Budget = self.preset.budget
        cfg = self.config([*budget.overrides(), *extra], seed)
        steps = cfg.train.steps if sets_steps([*extra, *self.user]) else budget.steps(cfg)
        needs_teacher = model == "meddtfm" and (cfg.flow.distills or cfg.flow.uses_reference)
        encoder = dataclasses.replace(cfg.encoder, checkpoint=str(teacher) if needs_teacher else None)
        return Run(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps), encoder=encoder),
                   out, model)


@dataclasses.dataclass
class Segmenters:
    """The teacher and evaluation U-Net files of a dataset, and their runs (None: given as a file, or not needed)."""

    teacher_file: Path
    segmenter_file: Path
    teacher: Run | None
    segmenter: Run | None

    def runs(self) -> list[Run]:
        return [r for r in (self.teacher, self.segmenter) if r is not None]


def segmenter_stages(dataset: Dataset, seed: int | None, teacher: Path | None, segmenter: Path | None,
                     need_segmenter: bool) -> Segmenters:
    """The U-KAN teacher and evaluation U-Net runs of ``dataset`` unless given as files."""
    preset, folder = dataset.preset, dataset.folder
    teacher_run = (None if teacher else
                   Run(dataset.config([*preset.teacher, "encoder.model=ukan"], seed), folder / "teacher", "ukan"))
    seg_run = (None if segmenter or not need_segmenter else
               Run(dataset.config([*preset.segmenter, "encoder.model=unet"], seed), folder / "segmenter", "unet"))
    return Segmenters(teacher or folder / "teacher" / "best.safetensors",
                      segmenter or folder / "segmenter" / "best.safetensors", teacher_run, seg_run)


def check_data(name: str, cfg: Config, split: str, study: str) -> None:
    """``ConfigError`` unless ``cfg``'s data can be read and has a ``split`` to score ``study`` on."""
    data = cfg.data
    if data.name != "phantoms" and not (data.root and Path(data.root).is_dir()):
        raise ConfigError(f"{name}: data.root={data.root} is not a folder; point it at the download with "
                          f"--set {name}:data.root=/path (a preset's relative root is taken from the current "
                          f"directory, {Path.cwd()})")
    fraction = data.val_fraction if split == "val" else data.test_fraction
    if fraction <= 0:
        raise ConfigError(f"{name}: {study} is scored on the {split} split; set data.{split}_fraction > 0")
