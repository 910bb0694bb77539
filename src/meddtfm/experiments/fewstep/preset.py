"""The few-step study's presets (``presets/NAME.yaml``) or a YAML file of this schema.

Per dataset the study trains the U-KAN teacher and the evaluation U-Net, the base flow (Med-DT-FM, the
default recipe, at ``budget``) and the GAN ``gan`` at the same budget; it distils the base flow with each
of ``methods`` for the step counts ``steps`` (``meddtfm distill-steps``, overrides ``distill`` and
``per_method``), then scores every row on one split with the same samples, seeds and metrics: the base flow
with each sampler of ``base``, each student at each of its step counts, the GAN's one pass. Each row's
sampling throughput is measured on the same batch in this process (``throughput_repeats``, the best kept).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...config import FEW_STEP_METHODS, ConfigError
from ...config.baselines import BASELINES
from ...config.few_step import MAX_STEPS
from ...flow import SOLVERS
from ..presets import StudyPreset, read_preset

STUDY = "fewstep"


@dataclass
class Sampler:
    """How the base flow is integrated for one row: ``nfe`` network evaluations of ``solver``."""

    nfe: int = 8
    solver: str = "heun"


def _base_rows() -> list[Sampler]:
    """Euler at 1, 2 and 4 NFE beside Heun at 2 to 50: Heun's 2 NFE are one step, Euler's two."""
    return [*(Sampler(k, "euler") for k in (1, 2, 4)), *(Sampler(k, "heun") for k in (2, 4, 8, 16, 50))]


@dataclass
class Preset(StudyPreset):
    """The common schema plus the few-step methods, their step counts and overrides, the base flow's samplers,
    the GAN and the throughput measurement."""

    methods: list[str] = field(default_factory=lambda: ["adversarial", "meanflow", "reflow"])
    steps: list[int] = field(default_factory=lambda: [1, 2, 4])  # every student is trained and scored at these NFEs
    base: list[Sampler] = field(default_factory=_base_rows)
    distill: list[str] = field(default_factory=list)  # every distillation: few_step.*, data.batch_size, train.*
    per_method: dict[str, list[str]] = field(default_factory=dict)  # a method's (or the GAN's) own overrides
    gan: str = "pix2pixhd"  # a GAN baseline at the base flow's budget, one pass a row; "" for none
    throughput_repeats: int = 3

    def __post_init__(self) -> None:
        names = FEW_STEP_METHODS.names()
        if not self.methods or set(self.methods) - set(names) or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods: {self.methods}; choose distinct ones among {', '.join(names)}")
        if not self.steps or len(set(self.steps)) != len(self.steps) or not all(1 <= k <= MAX_STEPS
                                                                                 for k in self.steps):
            raise ConfigError(f"steps: {self.steps} must be distinct step counts in 1..{MAX_STEPS}")
        if not self.base or any(s.nfe < 1 or s.solver not in SOLVERS.names() for s in self.base):
            raise ConfigError(f"base: {self.base}; list the base flow's samplers, each {{nfe: N >= 1, solver: "
                              f"NAME}} with NAME among {', '.join(SOLVERS.names())}")
        if self.gan and self.gan not in BASELINES:
            raise ConfigError(f"gan: {self.gan!r}; choose among {', '.join(BASELINES)} or '' for none")
        unknown = set(self.per_method) - {*self.methods, self.gan}
        if unknown:
            raise ConfigError(f"per_method: {sorted(unknown)} are not among methods {self.methods} or gan {self.gan!r}")
        if self.throughput_repeats < 1:
            raise ConfigError("throughput_repeats must be >= 1")


def load_preset(name: str) -> Preset:
    """The shipped preset ``name`` or the YAML file ``name``; ``ConfigError`` names what is wrong."""
    return read_preset(STUDY, name, Preset)[0]
