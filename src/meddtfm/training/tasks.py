"""The generators ``meddtfm train --model`` trains, by name: ``GENERATORS``.

Each entry builds the ``TrainTask`` of one kind of generator; ``meddtfm.evaluation.generation.LOADERS``
holds, under the same names, how its weights are sampled. The GAN baselines come from
``meddtfm.config.baselines.BASELINES``: a baseline registered there is trainable here as it is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..config import Config
from ..data.base import MedicalDataset
from ..models.ukan import FrozenTeacher
from ..registry import Registry
from .distributed import DistEnv
from .flow_matching import MedDTFMTask
from .gan import BASELINES, GANTask
from .loop import TrainTask


@dataclass(frozen=True)
class GeneratorKind:
    """How ``meddtfm train`` builds one kind of generator.

    Attributes:
        build: ``(cfg, training set, env, teacher or None) -> TrainTask``.
        uses_teacher: whether a run with ``cfg`` reads the U-KAN teacher of ``encoder.checkpoint``.
        val_metric: the validation figure that chooses ``best.safetensors``, as printed.
        deterministic: one pass from the condition to the image, without noise: every seed gives the same image.
    """

    build: Callable[[Config, MedicalDataset, DistEnv, FrozenTeacher | None], TrainTask]
    uses_teacher: Callable[[Config], bool]
    val_metric: str
    deterministic: bool


def _flow(cfg: Config, dataset: MedicalDataset, env: DistEnv, teacher: FrozenTeacher | None) -> MedDTFMTask:
    return MedDTFMTask(cfg, dataset, teacher, env)


def _baseline(model: str, cfg: Config, dataset: MedicalDataset, env: DistEnv,
              teacher: FrozenTeacher | None) -> GANTask:
    return GANTask(cfg, dataset, env, model)


def _never(cfg: Config) -> bool:
    return False


def _distils_or_references(cfg: Config) -> bool:
    return cfg.flow.distills or cfg.flow.uses_reference


GENERATORS: Registry[GeneratorKind] = Registry("generator")
for _name in BASELINES:
    GENERATORS.add(_name, f"{BASELINES.entry(_name).description}, a GAN baseline of Table 1",
                   GeneratorKind(partial(_baseline, _name), _never, "L1", deterministic=True))
GENERATORS.add("meddtfm", "the flow with distillation (flow.dt_weights=[0,0,0,0] is 'Ours (no DT)')",
               GeneratorKind(_flow, _distils_or_references, "L_FM", deterministic=False))

__all__ = ["GENERATORS", "GeneratorKind"]
