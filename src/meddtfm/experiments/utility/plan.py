"""The utility study's runs on one dataset, resolved and checked before anything is trained or drawn.

Per dataset ``OUT/DATASET/``: the U-KAN teachers a distilling generator needs (``teacher``, and
``teacher-low`` on the low-data subjects), the generators (``gen/G``, ``gen-low/G``), the synthetic sets
(``synthetic/G-1``, ``synthetic/G-2``: as many images as real training masks each, augment seeds 0 and 1;
``synthetic/G-low``), and the U-Nets of each arm (``unet/ARM[/G]/seedK``). The arms' data differ only in
``data.train_fraction`` and ``data.extra_train``: one architecture, one budget, one validation and test split.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ...config import Config, ConfigError
from ..budget import check_equal
from ..runs import Run
from ..stages import Dataset, check_data
from ..table1.methods import METHODS
from .preset import REAL_ARMS, Preset


@dataclasses.dataclass
class Synthetic:
    """A synthetic set: its folder, the generator that draws it, ``multiple`` x the masks of its training data,
    and the augment seed."""

    folder: Path
    generator: Run
    multiple: float
    seed: int


@dataclasses.dataclass
class Arm:
    """One row: the arm, its generator (None for the real-only arms), its U-Net run per training seed."""

    name: str
    generator: str | None
    runs: dict[int, Run]

    @property
    def label(self) -> str:
        return self.name if self.generator is None else f"{self.name} ({self.generator})"


@dataclasses.dataclass
class Plan:
    """Everything one dataset needs, in the order it is made."""

    name: str
    folder: Path
    teachers: list[Run]
    generators: list[Run]
    synthetic: list[Synthetic]
    arms: list[Arm]
    data: Config  # the real data every U-Net is validated and tested on (the ``real`` arm's config)

    def runs(self) -> list[Run]:
        return [*self.teachers, *self.generators, *(r for a in self.arms for r in a.runs.values())]


def _extra(*sets: Synthetic) -> str:
    return "data.extra_train=" + json.dumps([str(s.folder) for s in sets])


def _arm_overrides(arm: str, sets: tuple[Synthetic, ...], low: str) -> list[str]:
    """The data overrides of ``arm``'s U-Nets, given its generator's synthetic sets (1, 2, low)."""
    if arm == "real":
        return []
    if arm == "low":
        return [low]
    return {"real+1x": [_extra(sets[0])], "real+2x": [_extra(sets[0], sets[1])],
            "synthetic": ["data.train_fraction=0", _extra(sets[0])], "low+synthetic": [low, _extra(sets[2])]}[arm]


def plan_dataset(preset: Preset, name: str, user: list[str], out: Path) -> Plan:
    """The resolved runs of dataset ``name``; ``ConfigError`` names a bad override or unreadable data."""
    dataset = Dataset(preset, name, user, out / name)
    folder, low = dataset.folder, f"data.train_fraction={preset.low_fraction}"
    methods = {m.key: m for m in METHODS}
    uses_low = "low+synthetic" in preset.arms
    teacher = Run(dataset.config([*preset.teacher, "encoder.model=ukan"], None), folder / "teacher", "ukan")
    teacher_low = Run(dataset.config([*preset.teacher, "encoder.model=ukan", low], None), folder / "teacher-low",
                      "ukan")
    generators, synthetic, by_key = [], [], {}
    for key in preset.generators:
        m, own = methods[key], [*preset.methods.get(key, []), *methods[key].switch]
        full = dataset.generator(own, None, teacher.out / "best.safetensors", folder / "gen" / key, m.model)
        small = dataset.generator([*own, low], None, teacher_low.out / "best.safetensors", folder / "gen-low" / key,
                                  m.model)
        generators += [full, *([small] if uses_low else [])]
        sets = (Synthetic(folder / "synthetic" / f"{key}-1", full, 1.0, 0),
                Synthetic(folder / "synthetic" / f"{key}-2", full, 1.0, 1),
                Synthetic(folder / "synthetic" / f"{key}-low", small, preset.low_multiple, 0))
        by_key[key] = sets
        synthetic += [s for s, wanted in zip(sets, ({"real+1x", "real+2x", "synthetic"}, {"real+2x"},
                                                     {"low+synthetic"})) if wanted & set(preset.arms)]
    teachers = [t for t in (teacher, *([teacher_low] if uses_low else []))
                if any(g.cfg.encoder.checkpoint == str(t.out / "best.safetensors") for g in generators)]
    unet = [*preset.segmenter, "encoder.model=unet"]
    arms = []
    for arm in preset.arms:
        for key in ([None] if arm in REAL_ARMS else preset.generators):
            own = _arm_overrides(arm, by_key.get(key) if key else (), low)
            where = folder / "unet" / arm / (key or "")
            try:
                runs = {k: Run(dataset.config([*unet, *own], k), where / f"seed{k}", "unet") for k in preset.seeds}
            except ConfigError as err:
                raise ConfigError(f"{name}: arm {arm}: {err}") from err
            arms.append(Arm(arm, key, runs))
    check_equal(name, (r.cfg for a in arms for r in a.runs.values()), "the arms' U-Nets")
    check_equal(name, (g.cfg for g in generators))
    real = dataset.config(unet, preset.seeds[0])
    check_data(name, real, "test", "the utility study")
    return Plan(name, folder, teachers, generators, synthetic, arms, real)
