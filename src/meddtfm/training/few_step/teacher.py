"""The teacher's many-step outputs, drawn once per (sample, noise) and cached: the expensive part of distillation.

For training sample ``i`` (its ``sample_id``) and noise index ``j < few_step.noise_pool`` the noise is
``x0 = seeded_noise(sample_seed(seed, i, j))`` and the target is the base flow's ODE solution
``x1_T = ODE_{0 -> 1}(x0 | C_i)`` under guidance ``few_step.cfg`` (``flow.sampling.generate`` with
``few_step.teacher_solver`` at ``few_step.teacher_nfe``). Each training row draws ``j`` at random, so a
run costs at most ``noise_pool`` teacher samples per training image, whatever its length. ``distill-steps``
reads its data without augmentation (``synthesis.training_data_config``), so a sample's condition, and so
its target, is the same every epoch. The cache lives in host memory and is not saved: a resumed run draws
the targets again, the same ones (same noise, same teacher).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...flow.sampling import ConditionInputs, Guidance, SolverSpec, generate, sample_seed, seeded_noise
from ...models.generator import VelocityNet


class TeacherTargets:
    """``(x0, x1_T)`` pairs of the frozen teacher for batch rows (module doc); ``drawn`` counts teacher samples."""

    def __init__(self, teacher: VelocityNet, seed: int, spec: SolverSpec, guidance: Guidance) -> None:
        self.teacher, self.seed, self.spec, self.guidance = teacher, seed, spec, guidance
        self.cache: dict[tuple[str, int], Tensor] = {}
        self.drawn = 0

    def noise(self, ids: Sequence[str], js: Sequence[int], shape: Sequence[int], device: torch.device) -> Tensor:
        """``x0`` (B, *shape) of rows ``(ids[b], js[b])``: a sample's noise depends on its id and j only."""
        return seeded_noise([sample_seed(self.seed, i, j) for i, j in zip(ids, js)], shape, device)

    @torch.no_grad()
    def __call__(self, batch: dict, cond: ConditionInputs, js: Tensor) -> tuple[Tensor, Tensor]:
        """``(x0, x1_T)``, each (B, C, H, W), for the rows of ``batch`` with noise indices ``js`` (B,)."""
        image = batch["image"]
        ids, js = list(batch["sample_id"]), [int(j) for j in js]
        x0 = self.noise(ids, js, image.shape[1:], image.device)
        todo = [b for b, key in enumerate(zip(ids, js)) if key not in self.cache]
        if todo:
            rows = torch.tensor(todo, device=image.device)
            sub = ConditionInputs(len(todo), _rows(cond.mask, rows), _rows(cond.tokens, rows),
                                  _rows(cond.drop_mask, rows), _rows(cond.drop_caption, rows))
            out = generate(self.teacher, x0[rows], sub, self.spec, self.guidance).x.clamp(-1, 1)
            for b, x in zip(todo, out):
                self.cache[(ids[b], js[b])] = x.cpu()
            self.drawn += len(todo)
        x1 = torch.stack([self.cache[key] for key in zip(ids, js)]).to(image.device, image.dtype)
        return x0.to(image.dtype), x1


def _rows(x: Tensor | None, rows: Tensor) -> Tensor | None:
    return None if x is None else x[rows]
