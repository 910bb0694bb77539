"""Integration of the flow ODE ``dx/dt = v(x, t)``: forward (noise -> image) or backward (inversion).

The methods are the entries of ``SOLVERS``: Euler, midpoint, Heun and RK4 are written out as steps;
the adaptive ``dopri5`` runs in ``torchdiffeq``. A new method is a step function and one ``SOLVERS.add``.
NFE (velocity evaluations) per step: euler 1, midpoint 2, heun 2, rk4 4, so NFE = steps * stages.
Heun evaluates its corrector on every step, the last included (a flow velocity is finite at t = 1,
unlike a denoiser at sigma = 0, so no Euler last step); compare Euler with 2n steps to Heun with n.
``SolverResult.nfe`` counts the calls made; for ``dopri5`` it includes the step-size probe and
rejected steps. Gradients are not switched off: wrap sampling in ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchdiffeq import odeint
from tqdm import tqdm

from ..registry import Registry

Velocity = Callable[[Tensor, Tensor], Tensor]
Method = str  # a name in SOLVERS
GridKind = Literal["uniform", "shifted"]


def shift_time(t: Tensor, shift: float) -> Tensor:
    """SD3 time shift ``t' = s t / (1 + (s - 1) t)`` on [0, 1]; its inverse is the shift by ``1 / s``."""
    return shift * t / (1 + (shift - 1) * t)


def time_grid(
    nfe_steps: int,
    kind: GridKind = "uniform",
    shift: float = 3.0,
    t0: float = 0.0,
    t1: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Times ``t0 = tau_0, ..., tau_n = t1`` for ``n = nfe_steps`` steps, shape (n + 1,); endpoints exact.

    ``uniform``: equal steps. ``shifted``: ``tau = shift_time(u, s)``, ``u`` uniform between the
    inverse shifts of the endpoints, so the density of steps depends on absolute time only (``[0.4, 1]``
    uses that of ``[0, 1]``). Step sizes scale as ``s / (1 + (s - 1) u)^2``: ``s`` times the uniform step
    at the noise end t = 0, ``1 / s`` times at the data end t = 1, so ``s > 1`` concentrates steps near
    the image. As ``shift_time(t, 1/s) = 1 - shift_time(1 - t, s)``, shift ``1/s`` is SD3's schedule
    (dense near noise; SD3's t = 1 is noise) in our time. ``t1 < t0`` reverses the grid of ``[t1, t0]``,
    so inverting an image visits the times that sampling it does.
    """
    if nfe_steps < 1:
        raise ValueError(f"nfe_steps must be >= 1, got {nfe_steps}")
    lo, hi = min(t0, t1), max(t0, t1)
    if lo == hi:
        raise ValueError(f"t0 and t1 must differ, got {t0}")
    u = torch.linspace(0.0, 1.0, nfe_steps + 1, dtype=torch.float64)
    if kind == "uniform":
        grid = lo + (hi - lo) * u
    elif kind == "shifted":
        if shift <= 0 or lo < 0 or hi > 1:
            raise ValueError(f"shifted grid needs shift > 0 and 0 <= t <= 1, got shift={shift}, [{lo}, {hi}]")
        u_lo, u_hi = (shift_time(torch.tensor(v, dtype=torch.float64), 1 / shift) for v in (lo, hi))
        grid = shift_time(u_lo + (u_hi - u_lo) * u, shift)
    else:
        raise ValueError(f"unknown grid kind {kind!r}; expected 'uniform' or 'shifted'")
    grid[0], grid[-1] = lo, hi
    if t1 < t0:
        grid = grid.flip(0)
    return grid.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class SolverResult:
    """Output of ``integrate``.

    Attributes:
        x: state at the last time, (B, ...).
        nfe: velocity evaluations made.
        times: the grid (fixed-step) or output times (dopri5), (N,).
        trajectory: states at ``times``, (N, B, ...), when requested.
    """

    x: Tensor
    nfe: int
    times: Tensor
    trajectory: Tensor | None = None


class _CountedVelocity:
    """Calls ``velocity(x, t.expand(B))`` with a scalar time and counts the calls."""

    def __init__(self, velocity: Velocity, bar: tqdm) -> None:
        self.velocity, self.bar, self.nfe = velocity, bar, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        self.bar.update(1)
        return self.velocity(x, t.to(device=x.device, dtype=x.dtype).expand(x.shape[0]))


def _euler(f: _CountedVelocity, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """``x + h v(x, t)``, order 1."""
    return x + (t_next - t) * f(x, t)


def _midpoint(f: _CountedVelocity, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """``x + h v(x + h/2 v(x, t), t + h/2)``, order 2."""
    h = t_next - t
    return x + h * f(x + 0.5 * h * f(x, t), t + 0.5 * h)


def _heun(f: _CountedVelocity, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """Trapezoidal predictor-corrector ``x + h/2 (k1 + v(x + h k1, t + h))``, order 2."""
    h = t_next - t
    k1 = f(x, t)
    k2 = f(x + h * k1, t_next)
    return x + 0.5 * h * (k1 + k2)


def _rk4(f: _CountedVelocity, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """Classical Runge-Kutta, ``x + h/6 (k1 + 2 k2 + 2 k3 + k4)``, order 4."""
    h = t_next - t
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = f(x + h * k3, t_next)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


Step = Callable[[_CountedVelocity, Tensor, Tensor, Tensor], Tensor]  # (f, x, t, t_next) -> x at t_next


@dataclass(frozen=True)
class Solver:
    """An ODE method: a fixed ``step`` with ``stages`` velocity evaluations per step, or, with ``step``
    None, ``torchdiffeq``'s adaptive method of the same name (``stages`` 1: any NFE is allowed)."""

    stages: int
    step: Step | None = None

    @property
    def adaptive(self) -> bool:
        return self.step is None


SOLVERS: Registry[Solver] = Registry("solver")
SOLVERS.add("euler", "explicit Euler, order 1, 1 evaluation per step", Solver(1, _euler))
SOLVERS.add("midpoint", "explicit midpoint, order 2, 2 evaluations per step", Solver(2, _midpoint))
SOLVERS.add("heun", "Heun's trapezoidal predictor-corrector, order 2, 2 evaluations per step", Solver(2, _heun))
SOLVERS.add("rk4", "classical Runge-Kutta, order 4, 4 evaluations per step", Solver(4, _rk4))
SOLVERS.add("dopri5", "adaptive Dormand-Prince 5(4) (torchdiffeq; atol, rtol)", Solver(1))


def _resolve_times(solver: Solver, method: str, steps: int | None, grid: Tensor | None, t0: float, t1: float,
                   x: Tensor) -> Tensor:
    if grid is not None:
        if steps is not None:
            raise ValueError("give either steps or grid, not both")
        d = grid.diff() if grid.dim() == 1 else grid.new_empty(0)
        if d.numel() == 0 or not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ValueError("grid must be a 1-D, strictly monotonic tensor of at least 2 times")
        times = grid
    elif steps is not None:
        times = time_grid(steps, "uniform", t0=t0, t1=t1)
    elif solver.adaptive:
        times = torch.tensor([t0, t1])
    else:
        raise ValueError(f"method {method!r} needs steps or grid")
    return times.to(device=x.device, dtype=x.dtype)


def integrate(
    velocity: Velocity,
    x: Tensor,
    method: Method = "euler",
    steps: int | None = None,
    grid: Tensor | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    return_trajectory: bool = False,
    progress: bool = False,
) -> SolverResult:
    """Solve ``dx/dt = velocity(x, t)`` from ``x`` at the first time to the last.

    ``velocity`` takes ``x`` (B, ...) and ``t`` (B,) (one time, expanded over the batch) and
    returns (B, ...). Times: ``grid`` (strictly increasing or decreasing), else ``steps`` uniform
    steps from ``t0`` to ``t1``; ``t1 < t0`` integrates backward (inversion of an image). For
    ``dopri5`` the step sizes are adaptive (``atol``, ``rtol``) and ``grid``/``steps`` only choose
    where the trajectory is recorded (default: just ``[t0, t1]``); steps are cut to land on them, so
    the velocity is evaluated inside the interval, except that torchdiffeq's initial step-size
    probe looks ahead by about ``0.01 |x| / |v|`` (Hairer et al., II.4).
    """
    solver = SOLVERS[method]
    times = _resolve_times(solver, method, steps, grid, t0, t1, x)
    total = None if solver.adaptive else (times.numel() - 1) * solver.stages
    with tqdm(total=total, disable=not progress, desc=f"{method} NFE", leave=False) as bar:
        f = _CountedVelocity(velocity, bar)
        if solver.step is None:
            options = {"step_t": times[1:]}  # land on the output times, never step past the last
            states = odeint(lambda t, y: f(y, t), x, times, method=method, atol=atol, rtol=rtol, options=options)
            return SolverResult(states[-1], f.nfe, times, states if return_trajectory else None)
        trajectory = [x]
        for t, t_next in zip(times[:-1], times[1:]):
            x = solver.step(f, x, t, t_next)
            if return_trajectory:
                trajectory.append(x)
    return SolverResult(x, f.nfe, times, torch.stack(trajectory) if return_trajectory else None)
