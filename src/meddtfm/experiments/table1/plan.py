"""Table 1's runs on one dataset, resolved and checked before any training.

Per dataset: the U-KAN teacher and the evaluation U-Net (``pretrain-encoder``), unless given as files,
then the four generators of ``METHODS`` with one budget (``experiments.budget``). The configs merge, in
order: the dataset's config, the preset's ``common``, the dataset's overrides and root, the stage's
overrides, then the user's ``--set``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ...config import Config, ConfigError, load_config
from ..budget import check_equal, sets_steps
from ..runs import Run
from .methods import METHODS
from .preset import Preset


@dataclasses.dataclass
class Plan:
    """Everything one dataset needs; ``teacher`` / ``segmenter`` are None when given as files."""

    name: str
    teacher_file: Path
    segmenter_file: Path
    teacher: Run | None
    segmenter: Run | None
    methods: dict[str, Run]

    def runs(self) -> list[Run]:
        return [r for r in (self.teacher, self.segmenter, *self.methods.values()) if r is not None]


def plan_dataset(preset: Preset, name: str, user: list[str], seed: int | None, out: Path, teacher: Path | None,
                 segmenter: Path | None, need_segmenter: bool) -> Plan:
    """The resolved configs of one dataset's runs; the generators' steps come from the budget."""
    spec = preset.datasets[name]
    base = [*preset.common, *spec.data_overrides()]

    def config(extra: list[str]) -> Config:
        return load_config(spec.config, [*base, *extra, *user], seed)

    folder = out / name
    teacher_run = None if teacher else Run(config(preset.teacher + ["encoder.model=ukan"]), folder / "teacher", "ukan")
    seg_run = (None if segmenter or not need_segmenter else
               Run(config(preset.segmenter + ["encoder.model=unet"]), folder / "segmenter", "unet"))
    teacher_file = teacher or folder / "teacher" / "best.safetensors"
    budget, user_steps = preset.budget, sets_steps(user)
    methods = {}
    for m in METHODS:
        cfg = config([*preset.methods.get(m.key, []), *budget.overrides(), *m.switch])
        steps = cfg.train.steps if user_steps else budget.steps(cfg)
        needs_teacher = m.model == "meddtfm" and (cfg.flow.distills or cfg.flow.uses_reference)
        encoder = dataclasses.replace(cfg.encoder, checkpoint=str(teacher_file) if needs_teacher else None)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps), encoder=encoder)
        methods[m.key] = Run(cfg, folder / m.key, m.model)
    _check(name, methods)
    return Plan(name, teacher_file, segmenter or folder / "segmenter" / "best.safetensors", teacher_run, seg_run,
                methods)


def _check(name: str, methods: dict[str, Run]) -> None:
    """Equal budgets, the no-DT switch, and readable data, before any training."""
    check_equal(name, (r.cfg for r in methods.values()))
    nodt, ours = methods["nodt"].cfg, methods["meddtfm"].cfg
    if nodt.flow.distills or nodt.flow.uses_reference or nodt.encoder.checkpoint or not ours.flow.distills:
        raise ConfigError(f"{name}: Med-DT-FM needs flow.dt_weights > 0, and Ours (no DT) no teacher at all "
                          "(flow.dt_weights all 0 and flow.reference=false)")
    data = ours.data
    if data.name != "phantoms" and not (data.root and Path(data.root).is_dir()):
        raise ConfigError(f"{name}: data.root={data.root} is not a folder; point it at the download with "
                          f"--set {name}:data.root=/path (a preset's relative root is taken from the current "
                          f"directory, {Path.cwd()})")
    if data.test_fraction <= 0:
        raise ConfigError(f"{name}: Table 1 is scored on the test split; set data.test_fraction > 0")
