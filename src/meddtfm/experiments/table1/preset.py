"""Table 1's presets: ``ci``, ``cpu`` and ``paper`` (``presets/NAME.yaml``), or a YAML file of this schema.

A preset fixes the datasets, the model sizes, the evaluation and one training budget that every
generator gets (``experiments.budget``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...config import ConfigError
from .. import presets
from ..columns import METRIC_NAMES
from .methods import METHODS

STUDY = "table1"


@dataclass
class Preset(presets.StudyPreset):
    """A whole Table 1 run: the common schema, plus per-method overrides and the figures' sizes."""

    methods: dict[str, list[str]] = field(default_factory=dict)  # per METHODS key
    fig2_rows: int = 4  # cases per dataset in fig2.png (a multi-channel MRI case: one row per sequence)
    convergence_frd_images: int = 0  # > 0: validation FRD on this many images at each kept flow checkpoint


def preset_names() -> list[str]:
    """The shipped Table 1 presets."""
    return presets.preset_names(STUDY)


def load_preset(name: str) -> Preset:
    """The shipped preset ``name``, or the YAML file ``name``; ``ConfigError`` names what is wrong."""
    preset, path = presets.read_preset(STUDY, name, Preset)
    unknown = set(preset.methods) - {m.key for m in METHODS}
    bad_metrics = set(preset.evaluation.metrics) - METRIC_NAMES
    budget = min(preset.budget.images, preset.budget.batch_size)
    if unknown or bad_metrics or not preset.datasets or budget < 1 or not preset.evaluation.seeds:
        raise ConfigError(f"invalid preset {path}: needs datasets, a positive budget, seeds, methods among "
                          f"{[m.key for m in METHODS]} (got {sorted(unknown)}), metrics among "
                          f"{sorted(METRIC_NAMES)} (got {sorted(bad_metrics)})")
    return preset
