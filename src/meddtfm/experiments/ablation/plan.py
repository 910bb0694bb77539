"""The ablation's runs on one dataset, resolved and checked before any training.

Per dataset: the segmenter stages (``experiments.stages``) unless given as files, then one generator run
per selected variant and training seed, ``OUT/DATASET/VARIANT/seedK``, at the preset's budget. Every
variant of the list, selected or not, must resolve to a valid config with the budget and the data of the
others, so that a bad override stops the study before anything trains.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ...config import Config, ConfigError, to_dict
from ..budget import check_equal
from ..runs import Run
from ..stages import Dataset, Segmenters, check_data, segmenter_stages
from .preset import Preset, Variant

# data keys a variant may change: they change how fast or how the training set is read, not what is scored
FREE_DATA_KEYS = ("batch_size", "num_workers", "augment", "volume_cache")


@dataclasses.dataclass
class Plan:
    """One dataset: its segmenter stages, the runs of the selected variants by (variant, training seed), and the
    config of a run of the first variant (its data is what every variant is scored on, its budget theirs)."""

    name: str
    folder: Path
    segmenters: Segmenters
    runs: dict[tuple[str, int], Run]
    base: Config

    def all_runs(self) -> list[Run]:
        return [*self.segmenters.runs(), *self.runs.values()]


def run_folder(folder: Path, variant: str, seed: int) -> Path:
    """Where the run of ``variant`` with training seed ``seed`` lives: ``DATASET/VARIANT/seedK``."""
    return folder / variant / f"seed{seed}"


def scored_data(cfg: Config, also: Sequence[str] = ()) -> dict:
    """``cfg.data`` without the keys a variant may change, nor those in ``also``."""
    return {k: v for k, v in to_dict(cfg.data).items() if k not in (*FREE_DATA_KEYS, *also)}


def plan_dataset(preset: Preset, variants: Sequence[Variant], selected: Sequence[str], name: str, user: list[str],
                 out: Path, teacher: Path | None, segmenter: Path | None, need_segmenter: bool) -> Plan:
    """The resolved runs of ``selected`` variants on dataset ``name``, after checking every variant."""
    dataset = Dataset(preset, name, user, out / name)
    stages = segmenter_stages(dataset, None, teacher, segmenter, need_segmenter)
    runs: dict[tuple[str, int], Run] = {}
    for v in variants:
        for seed in preset.seeds if v.name in selected else preset.seeds[:1]:
            try:
                runs[(v.name, seed)] = dataset.generator(v.overrides, seed, stages.teacher_file,
                                                         run_folder(dataset.folder, v.name, seed), "meddtfm")
            except ConfigError as err:
                raise ConfigError(f"{name}: variant {v.name}: {err}") from err
    check_equal(name, (r.cfg for r in runs.values()), "the variants")
    first = next(iter(runs.values())).cfg
    for (variant, _), run in runs.items():
        if scored_data(run.cfg) != scored_data(first):
            raise ConfigError(f"{name}: variant {variant} changes the data the variants are scored on; a variant "
                              f"may change only data.{', data.'.join(FREE_DATA_KEYS)}")
    check_data(name, first, preset.evaluation.split, "the ablation")
    return Plan(name, dataset.folder, stages, {k: r for k, r in runs.items() if k[0] in selected}, first)
