"""Few-step generators from a trained flow (``meddtfm distill-steps``): one ``TrainTask`` per method.

| module | what lives there |
|---|---|
| ``base`` | ``load_base_flow``, ``recorded_sections``, ``FewStepTask``: the student from the flow, export |
| ``teacher`` | ``TeacherTargets``: the teacher's many-step outputs per (sample, noise), cached |
| ``adversarial`` | ``AdversarialTask``: k Euler steps judged by a PatchGAN (hinge + R1), plus a teacher term |
| ``reflow`` | ``ReflowTask``: the velocity loss on the teacher's straight couplings |
| ``meanflow`` | ``MeanFlowTask``: the average velocity by the MeanFlow identity |

The methods are named in ``meddtfm.config.FEW_STEP_METHODS``; ``build_task`` makes the one a config asks for.
"""
from __future__ import annotations

from ...config import FEW_STEP_METHODS, Config
from ...data.base import MedicalDataset
from ..distributed import DistEnv
from .base import BaseFlow, FewStepTask, load_base_flow, recorded_sections


def build_task(cfg: Config, dataset: MedicalDataset, env: DistEnv, base: BaseFlow) -> FewStepTask:
    """The ``TrainTask`` of ``cfg.few_step.method`` fine-tuning ``base`` on ``dataset``."""
    return FEW_STEP_METHODS[cfg.few_step.method](cfg, dataset, env, base)


__all__ = ["BaseFlow", "FewStepTask", "build_task", "load_base_flow", "recorded_sections"]
