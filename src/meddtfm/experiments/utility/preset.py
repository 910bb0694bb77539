"""The downstream-utility study's presets (``presets/NAME.yaml``) or a YAML file of this schema.

Arms, each the same MONAI U-Net at the same budget (``segmenter:``), trained with ``seeds`` and scored on
the real test split: ``real`` (the real training split), ``real+1x`` and ``real+2x`` (plus as many synthetic
images as real ones, or twice), ``synthetic`` (the 1x synthetic set alone), ``low`` (``low_fraction`` of the
real training subjects) and ``low+synthetic`` (those plus ``low_multiple`` x as many synthetic images from a
generator, and its teacher, trained on those same subjects only). The synthetic arms exist per generator of
``generators`` (Table 1's method keys: ``meddtfm``, ``nodt``, ``pix2pixhd``, ``medgan``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...config import ConfigError
from ..presets import StudyPreset, read_preset
from ..table1.methods import METHODS

STUDY = "utility"
ARMS = ("real", "real+1x", "real+2x", "synthetic", "low", "low+synthetic")
REAL_ARMS = ("real", "low")  # the arms without a generator


@dataclass
class SyntheticSpec:
    """How the synthetic sets are drawn (``meddtfm augment``'s options)."""

    nfe: int = 8
    solver: str = "heun"
    cfg: float = 2.0
    vary: str = "flip,rotate=15,scale=0.1,shift"
    batch_size: int = 16


@dataclass
class Preset(StudyPreset):
    """The whole study: the common schema plus generators, arms, U-Net seeds and the low-data regime."""

    generators: list[str] = field(default_factory=lambda: ["meddtfm", "nodt", "pix2pixhd"])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # U-Net training seeds, every arm
    low_fraction: float = 0.1
    low_multiple: float = 2.0  # low+synthetic: synthetic images per real image of the low-data subset
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    methods: dict[str, list[str]] = field(default_factory=dict)  # per generator key, as in Table 1's presets

    def __post_init__(self) -> None:
        keys = [m.key for m in METHODS]
        if not self.generators or set(self.generators) - set(keys):
            raise ConfigError(f"generators: {self.generators}; choose among {', '.join(keys)}")
        if not self.arms or set(self.arms) - set(ARMS):
            raise ConfigError(f"arms: {self.arms}; choose among {', '.join(ARMS)}")
        if not 0.0 < self.low_fraction < 1.0 or self.low_multiple <= 0 or not self.seeds:
            raise ConfigError("low_fraction must lie in (0, 1), low_multiple be > 0, and seeds list some")
        if self.evaluation.split != "test":
            raise ConfigError("the utility study reports the real test split (evaluation.split: test); the U-Nets "
                              "choose their weights on the validation split")


def load_preset(name: str) -> Preset:
    """The shipped preset ``name`` or the YAML file ``name``; ``ConfigError`` names what is wrong."""
    return read_preset(STUDY, name, Preset)[0]
