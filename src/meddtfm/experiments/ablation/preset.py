"""The ablation's presets, ``ci``, ``cpu`` and ``gpu`` (``presets/NAME.yaml``) or a YAML file of this schema, and
its variants.

A variant is a name, a one-line description and ``key.path=value`` overrides on top of the preset's base
config (the dataset's config, ``common``, the dataset's overrides, the budget), or just the name of a
training recipe (``config.RECIPES``: ``- bottleneck_cos``), which stands for that recipe's description and
overrides; ``--variants FILE`` replaces the preset's list with a YAML list of such entries. The reference
variant is ``reference`` (the paper's form) when the list has it, else the first. Each run of training
seed ``k`` is scored with sampling seed ``k``, so ``evaluation.seeds`` is not a key of this study;
``evaluation.split`` must be ``val``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ...config import ConfigError
from ...config.recipes import find_recipe
from .. import presets
from ..columns import METRIC_NAMES
from ..presets import EvalSpec

STUDY = "ablation"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED = ("teacher", "segmenter", "eval")  # run folders of OUT/DATASET that are not variants


@dataclass
class Variant:
    """One recipe: a name (its folder ``OUT/DATASET/NAME``), a one-line description, its config overrides."""

    name: str = MISSING
    description: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class Preset(presets.StudyPreset):
    """A whole ablation: the common schema (scored on ``val``), training seeds, variants and the reference."""

    evaluation: EvalSpec = field(default_factory=lambda: EvalSpec(split="val"))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # training seeds; seed k's run samples with seed k
    variants: list[Variant] = field(default_factory=list)
    reference: str = "paper"  # the variant the others are compared with (the paper's form)
    convergence_frd_images: int = 0  # > 0: validation FRD on this many images at each kept checkpoint


def preset_names() -> list[str]:
    """The shipped ablation presets."""
    return presets.preset_names(STUDY)


def check_variants(variants: list[Variant], where: str) -> None:
    """``ConfigError`` unless the variants have distinct folder-safe names that are not run folders."""
    names = [v.name for v in variants]
    bad = [n for n in names if not NAME.fullmatch(n) or n in RESERVED]
    twice = sorted({n for n in names if names.count(n) > 1})
    if not variants or bad or twice:
        raise ConfigError(f"{where}: needs variants with distinct names of letters, digits, '_', '.' and '-', none of "
                          f"{', '.join(RESERVED)} (bad: {bad}, repeated: {twice})")


def from_recipes(entries: list) -> list:
    """Variant entries with each bare name replaced by the recipe of that name (``ConfigError`` if unknown)."""
    return [_recipe_variant(e) if isinstance(e, str) else e for e in entries]


def _recipe_variant(name: str) -> dict:
    recipe = find_recipe(name)
    return {"name": name, "description": recipe.description, "overrides": list(recipe.value)}


def _variants_from_recipes(raw: DictConfig) -> None:
    if OmegaConf.is_list(raw.get("variants")):
        raw.variants = from_recipes(list(raw.variants))


def read_variants(path: str | Path) -> list[Variant]:
    """The YAML list of variants in ``path`` (``--variants FILE``); ``ConfigError`` names what is wrong."""
    try:
        entries = OmegaConf.load(path)
        if not OmegaConf.is_list(entries):
            raise ConfigError("expected a YAML list of variants (- name: ..., description: ..., "
                              "overrides: [key.path=value, ...]) or of recipe names (- bottleneck_cos)")
        variants = [OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Variant), e))
                    for e in from_recipes(list(entries))]
    except (OmegaConfBaseException, yaml.YAMLError, OSError, ConfigError) as err:
        raise ConfigError(f"invalid variants file {path}: {err}") from err
    check_variants(variants, str(path))  # type: ignore[arg-type]
    return variants  # type: ignore[return-value]


def load_preset(name: str) -> Preset:
    """The shipped preset ``name``, or the YAML file ``name``; ``ConfigError`` names what is wrong."""
    preset, path = presets.read_preset(STUDY, name, Preset, _variants_from_recipes)
    raw = OmegaConf.load(path)
    if "seeds" in raw.get("evaluation", {}):
        raise ConfigError(f"invalid preset {path}: the run of training seed k samples with seed k; give the training "
                          "seeds as seeds: [...], not evaluation.seeds")
    if preset.evaluation.split != "val":
        raise ConfigError(f"invalid preset {path}: an ablation chooses the recipe, so it is scored on the validation "
                          "split (evaluation.split: val); the test split is for the reported tables only")
    bad_metrics = sorted(set(preset.evaluation.metrics) - METRIC_NAMES)
    seeds = preset.seeds
    if not preset.datasets or min(preset.budget.images, preset.budget.batch_size) < 1 or bad_metrics or not seeds \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"invalid preset {path}: needs datasets, a positive budget, distinct training seeds and "
                          f"metrics among {sorted(METRIC_NAMES)} (got {bad_metrics})")
    check_variants(preset.variants, f"invalid preset {path}")
    return preset


def reference_of(preset: Preset, variants: list[Variant]) -> str:
    """The reference variant's name: the preset's ``reference`` if ``variants`` has it, else the first."""
    return preset.reference if any(v.name == preset.reference for v in variants) else variants[0].name
