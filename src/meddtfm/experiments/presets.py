"""A study's preset: its datasets, the overrides of every run, the budget and how runs are scored.

Presets are package data, ``meddtfm/experiments/STUDY/presets/NAME.yaml``; ``read_preset`` loads one by
name, or any YAML file, into the study's schema (a subclass of ``StudyPreset``). Override lists are
``key.path=value`` strings, as for ``--set``. A dataset's ``config`` is a shipped config name (``lgg``,
see ``meddtfm.config.shipped``) or a YAML file; its ``root``, when relative, is taken from the current
directory, as ``--set data.root=...`` is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import ConfigError
from ..config.errors import check_choice
from .budget import Budget

EXPERIMENTS = Path(__file__).resolve().parent
SPLITS = ("val", "test")  # the splits a study may score on; never the training split


@dataclass
class DatasetSpec:
    """A dataset of a study: its config, ``data.root`` (relative: to the current directory), its runs' overrides."""

    config: str = "phantoms"
    root: str | None = None
    overrides: list[str] = field(default_factory=list)  # for every run on this dataset

    def data_overrides(self) -> list[str]:
        """``overrides``, then ``data.root`` made absolute when the preset gives one."""
        return [*self.overrides, *([f"data.root={Path(self.root).resolve()}"] if self.root is not None else [])]


@dataclass
class EvalSpec:
    """How every method is scored: ``meddtfm evaluate`` mode B on one split, noise-based synthesis.

    ``split`` is ``test`` for the reported tables, ``val`` for a study that chooses between recipes (an
    ablation): what is tuned on the test split cannot be reported on it.
    """

    split: str = "test"  # val | test
    metrics: list[str] = field(default_factory=lambda: ["paired", "dice", "frd", "fid"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    limit: int = 0  # first N samples of the split (0: all)
    nfe: int = 8
    solver: str = "heun"
    cfg: float = 2.0  # guidance scale of the flows (mask and caption)
    batch_size: int = 16
    frd_version: str = "v1"
    average_of: int = 4  # K: SSIM / MS-SSIM / PSNR also of the pixel mean of K draws per mask (0: off)

    def __post_init__(self) -> None:
        check_choice("evaluation.split", self.split, SPLITS)


@dataclass
class StudyPreset:
    """What every study's preset has; a study's schema subclasses it with its own fields."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    common: list[str] = field(default_factory=list)  # every run
    teacher: list[str] = field(default_factory=list)  # pretrain-encoder (U-KAN teacher)
    segmenter: list[str] = field(default_factory=list)  # pretrain-encoder --model unet (evaluation U-Net)


Preset = TypeVar("Preset", bound=StudyPreset)


def preset_folder(study: str) -> Path:
    """Where ``study``'s presets are shipped."""
    return EXPERIMENTS / study / "presets"


def preset_names(study: str) -> list[str]:
    """The names of ``study``'s shipped presets, sorted."""
    return sorted(p.stem for p in preset_folder(study).glob("*.yaml"))


def read_preset(study: str, name: str, schema: type[Preset],
                prepare: Callable[[DictConfig], None] | None = None) -> tuple[Preset, Path]:
    """The shipped preset ``name`` of ``study``, or the YAML file ``name``, and its file; ``ConfigError`` if not.

    ``prepare`` may rewrite the loaded YAML in place before it is checked against ``schema``.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else preset_folder(study) / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(preset_names(study))
        raise ConfigError(f"unknown preset {name!r}: choose one of {choices} or give a YAML file")
    try:
        raw = OmegaConf.load(path)
        if prepare is not None:
            prepare(raw)  # type: ignore[arg-type]
        preset = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), raw))
    except (OmegaConfBaseException, yaml.YAMLError, ConfigError) as err:
        raise ConfigError(f"invalid preset {path}: {err}") from err
    return preset, path  # type: ignore[return-value]
