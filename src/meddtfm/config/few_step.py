"""The ``few_step`` section: ``meddtfm distill-steps``, a trained flow fine-tuned into a k-step generator.

``FEW_STEP_METHODS`` names the methods, each an import path of its ``TrainTask`` class in
``meddtfm.training.few_step`` (resolved on first use, as ``BASELINES`` is), so that ``few_step.method``
is checked when a config loads. A new method is its task module plus one line here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry
from .errors import ConfigError, check_choice

FEW_STEP_METHODS: Registry[type] = Registry("few-step method")
FEW_STEP_METHODS.add_lazy(
    "adversarial", "adversarial post-training (Seaweed-APT, arXiv 2501.08316): k Euler steps of the student judged by "
    "the mask-conditioned PatchGAN (hinge + R1) against real images, plus a pseudo-Huber term to the teacher's "
    "many-step output for the same noise", "meddtfm.training.few_step.adversarial:AdversarialTask")
FEW_STEP_METHODS.add_lazy(
    "reflow", "one round of rectified flow (2-rectified flow, Liu et al. 2023): the velocity loss on the straight "
    "couplings (noise, teacher output)", "meddtfm.training.few_step.reflow:ReflowTask")
FEW_STEP_METHODS.add_lazy(
    "meanflow", "MeanFlow (arXiv 2505.13447): the average velocity u(z_t, t, h) over [t, t + h], trained by the "
    "MeanFlow identity with the teacher's guided velocity", "meddtfm.training.few_step.meanflow:MeanFlowTask")

MAX_STEPS = 16  # a "few-step" generator; more steps are the base flow's business


@dataclass
class FewStepConfig:
    """How ``distill-steps`` turns a trained flow into a k-step generator (``meddtfm.training.few_step``).

    ``iterations`` and ``lr`` replace ``train.steps`` and ``train.lr`` (a fine-tune wants far fewer steps and
    a smaller rate than training from scratch); every other ``train.*`` key (EMA, checkpoints, warm-up) and
    ``data.batch_size`` apply as in ``meddtfm train``. ``cfg`` is the guidance scale of the teacher (the
    frozen base flow) that is distilled into the student, which then samples in one pass per step.
    """

    method: str = "meanflow"  # a name in FEW_STEP_METHODS; meanflow: reproduce fewstep's recommendation (README)
    steps: list[int] = field(default_factory=lambda: [1, 2, 4])  # the NFEs the student is trained for
    checkpoint: str | None = None  # the base flow's weights (set by distill-steps --checkpoint)
    iterations: int = 2000
    lr: float = 2e-5
    cfg: float = 2.0  # teacher guidance scale (mask and caption), baked into the student
    teacher_solver: str = "heun"  # how the teacher's targets are drawn (a name in SOLVERS)
    teacher_nfe: int = 16
    noise_pool: int = 4  # noises per training sample whose teacher outputs are drawn once and cached
    time_sampling: str = "uniform"  # reflow, meanflow: uniform | logit_normal
    adv_weight: float = 1.0  # adversarial: weight of the generator's hinge loss
    distill_weight: float = 1.0  # adversarial: weight of the loss to the teacher's output
    distill_loss: str = "pseudo_huber"  # adversarial: l1 | pseudo_huber
    r1_gamma: float = 1.0  # adversarial: R1 penalty (gamma / 2) E||grad_x D(x_real)||^2; 0: none
    disc_channels: int = 64
    disc_layers: int = 3
    disc_scales: int = 2
    meanflow_ratio: float = 0.25  # meanflow: fraction of rows with h > 0 (the others train u(z_t, t, 0) = v)
    meanflow_p: float = 1.0  # meanflow: adaptive loss weight 1 / (||delta||^2 + c)^p; 0: plain L2
    max_budget: float = 0.25  # warn when the distillation sees more than this fraction of the base's training images

    def __post_init__(self) -> None:
        check_choice("few_step.method", self.method, FEW_STEP_METHODS.names())
        check_choice("few_step.distill_loss", self.distill_loss, ("l1", "pseudo_huber"))
        check_choice("few_step.time_sampling", self.time_sampling, ("uniform", "logit_normal"))
        if not self.steps or len(set(self.steps)) != len(self.steps) or not all(1 <= k <= MAX_STEPS
                                                                                 for k in self.steps):
            raise ConfigError(f"few_step.steps={list(self.steps)} must be distinct step counts in 1..{MAX_STEPS}")
        if min(self.iterations, self.teacher_nfe, self.noise_pool) < 1 or self.lr <= 0:
            raise ConfigError("few_step.iterations, teacher_nfe, noise_pool must be >= 1 and few_step.lr > 0")
        if min(self.adv_weight, self.distill_weight, self.r1_gamma, self.meanflow_p, self.max_budget) < 0:
            raise ConfigError("few_step loss weights, r1_gamma, meanflow_p and max_budget must be >= 0")
        if not 0.0 <= self.meanflow_ratio <= 1.0:
            raise ConfigError(f"few_step.meanflow_ratio={self.meanflow_ratio} must lie in [0, 1]")
