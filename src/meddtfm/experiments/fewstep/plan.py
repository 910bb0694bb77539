"""The few-step study's runs on one dataset, resolved and checked before any training.

Per dataset ``OUT/DATASET/``: the teacher and the evaluation U-Net (``stages.segmenter_stages``, unless
given as files), the base flow ``base`` (Med-DT-FM as configured, at the preset's budget), the GAN
``GAN`` at the same budget, and one student per method, ``METHOD/``: a ``distill-steps`` run of the base
flow's final weights whose config is the base flow's with the distillation's overrides, ``train.steps`` and
``train.lr`` from ``few_step.iterations`` and ``few_step.lr``, and no augmentation (``distill-steps`` reads
its data so); its generator and flow sections must be the base flow's, and once the base flow is trained
they are those its weights record, as ``distill-steps`` reads them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ...checkpoint import weights_config
from ...config import ConfigError
from ...training.few_step import recorded_sections
from ..budget import check_equal
from ..runs import FEW_STEP, Run
from ..stages import Dataset, check_data, segmenter_stages
from .preset import Preset


@dataclasses.dataclass
class Plan:
    """Everything one dataset needs; ``teacher`` / ``segmenter`` are None when given as files, ``gan`` when off."""

    name: str
    segmenter_file: Path
    teacher: Run | None
    segmenter: Run | None
    base: Run
    gan: Run | None
    students: dict[str, Run]

    def runs(self) -> list[Run]:
        return [r for r in (self.teacher, self.segmenter, self.base, self.gan, *self.students.values())
                if r is not None]


def student(dataset: Dataset, base: Run, extra: list[str], method: str, steps: list[int], seed: int | None) -> Run:
    """The ``distill-steps`` run of ``base`` with ``method`` for ``steps``; ``ConfigError`` if ``extra`` changes
    the network or the flow."""
    own = [*dataset.preset.budget.overrides(), *extra, f"few_step.method={method}",
           f"few_step.steps=[{','.join(map(str, steps))}]"]
    cfg = dataset.config(own, seed)
    changed = [s for s in ("generator", "flow") if getattr(cfg, s) != getattr(base.cfg, s)]
    if changed:
        raise ConfigError(f"{dataset.name}: the {method} distillation's overrides change the base flow's "
                          f"{' and '.join(changed)} section; a student keeps the flow's network and flow")
    final = base.out / "final.safetensors"
    if final.is_file():  # distill-steps takes both from the weights, as built (vocab_size 0 without captions)
        generator, flow = recorded_sections(weights_config(final))
        cfg = dataclasses.replace(cfg, generator=generator, flow=flow)
    fs = dataclasses.replace(cfg.few_step, checkpoint=str(final))
    cfg = dataclasses.replace(cfg, few_step=fs, encoder=base.cfg.encoder,
                              data=dataclasses.replace(cfg.data, augment=False),
                              train=dataclasses.replace(cfg.train, steps=fs.iterations, lr=fs.lr))
    return Run(cfg, dataset.folder / method, FEW_STEP)


def plan_dataset(preset: Preset, name: str, user: list[str], seed: int | None, out: Path, teacher: Path | None,
                 segmenter: Path | None) -> Plan:
    """The resolved configs of one dataset's runs; the base flow's and the GAN's steps come from the budget."""
    dataset = Dataset(preset, name, user, out / name)
    stages = segmenter_stages(dataset, seed, teacher, segmenter, need_segmenter=True)
    base = dataset.generator([], seed, stages.teacher_file, dataset.folder / "base", "meddtfm")
    gan = (dataset.generator(preset.per_method.get(preset.gan, []), seed, stages.teacher_file,
                             dataset.folder / preset.gan, preset.gan) if preset.gan else None)
    check_equal(name, [base.cfg, *([gan.cfg] if gan else [])], "the base flow and the GAN")
    students = {m: student(dataset, base, [*preset.distill, *preset.per_method.get(m, [])], m, preset.steps, seed)
                for m in preset.methods}
    check_data(name, base.cfg, preset.evaluation.split, "the few-step study")
    return Plan(name, stages.segmenter_file, stages.teacher, stages.segmenter, base, gan, students)
