"""Table 1's runs on one dataset, resolved and checked before any training.

Per dataset: the U-KAN teacher and the evaluation U-Net (``stages.segmenter_stages``), unless given as
files, then the four generators of ``METHODS`` with one budget (``experiments.budget``); the order in
which configs merge is ``experiments.stages``'s, with each method's overrides and switch as the run's own.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ...config import ConfigError
from ..budget import check_equal
from ..runs import Run
from ..stages import Dataset, check_data, segmenter_stages
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
    dataset = Dataset(preset, name, user, out / name)
    stages = segmenter_stages(dataset, seed, teacher, segmenter, need_segmenter)
    methods = {m.key: dataset.generator([*preset.methods.get(m.key, []), *m.switch], seed, stages.teacher_file,
                                        dataset.folder / m.key, m.model)
               for m in METHODS}
    _check(name, methods, preset.evaluation.split)
    return Plan(name, stages.teacher_file, stages.segmenter_file, stages.teacher, stages.segmenter, methods)


def _check(name: str, methods: dict[str, Run], split: str) -> None:
    """Equal budgets, the no-DT switch, and readable data, before any training."""
    check_equal(name, (r.cfg for r in methods.values()))
    nodt, ours = methods["nodt"].cfg, methods["meddtfm"].cfg
    if nodt.flow.distills or nodt.flow.uses_reference or nodt.encoder.checkpoint or not ours.flow.distills:
        raise ConfigError(f"{name}: Med-DT-FM needs flow.dt_weights > 0, and Ours (no DT) no teacher at all "
                          "(flow.dt_weights all 0 and flow.reference=false)")
    check_data(name, ours, split, "Table 1")
