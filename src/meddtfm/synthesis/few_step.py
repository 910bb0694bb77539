"""Sampling settings for a generator, flow or few-step one: ``solver auto`` and the checks of a few-step model.

A flow samples with any solver, NFE and guidance (``auto``: Heun, NFE 8). A few-step generator
(``meddtfm distill-steps``, ``flow.few_step.FewStep`` in its metadata) samples only as it was trained:
k uniform Euler steps (its own update; ``auto`` or ``euler``), NFE = k one of its trained step counts,
and the guidance scale distilled into it (applied by the weights, not by extra passes). Anything else
is a ``FewStepError`` that names the file and what it was trained for: no silent fallback.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..flow.few_step import FewStep, FewStepError
from ..flow.sampling import Guidance, SolverSpec

AUTO = "auto"  # the solver option's default: the model's own
FLOW_DEFAULTS = ("heun", 8)  # what ``auto`` and no NFE mean for a flow


def sampling_spec(few_step: FewStep | None, path: str | Path, solver: str = AUTO, nfe: int | None = None,
                  grid: str = "uniform", shift: float = 3.0) -> SolverSpec:
    """The ``SolverSpec`` of the generator in ``path``; ``nfe`` None: 8 for a flow, the fewest trained steps else."""
    if few_step is None:
        method = FLOW_DEFAULTS[0] if solver == AUTO else solver
        return SolverSpec(method, FLOW_DEFAULTS[1] if nfe is None else nfe, grid, shift)
    if solver not in (AUTO, "euler") or grid != "uniform":
        raise FewStepError(f"{few_step.describe(path)}: it samples with its own k uniform Euler steps; drop "
                           f"--solver {solver} / --time-grid {grid} (or use --solver auto)")
    nfe = min(few_step.steps) if nfe is None else nfe
    few_step.check_nfe(nfe, path)
    return SolverSpec("euler", nfe)


def check_few_step(few_step: FewStep, path: str | Path, spec: SolverSpec, guidance: Guidance,
                   captions: bool) -> None:
    """``FewStepError`` unless ``spec`` and ``guidance`` are what the few-step generator in ``path`` was trained for.

    ``captions``: whether it has a caption path (else the caption scale does not matter).
    """
    if spec.method != "euler" or spec.grid != "uniform":
        raise FewStepError(f"{few_step.describe(path)}: it samples with uniform Euler steps, not {spec.method} on a "
                           f"{spec.grid} grid")
    few_step.check_nfe(spec.nfe, path)
    scales = [guidance.mask] + ([guidance.caption] if captions else [])
    if guidance.classes or not all(math.isclose(s, few_step.cfg) for s in scales):
        raise FewStepError(f"{few_step.describe(path)} with guidance scale {few_step.cfg} distilled into it; it "
                           f"samples without further guidance: pass --cfg {few_step.cfg} (and no --cfg-caption or "
                           f"--cfg-class), got {guidance}")
