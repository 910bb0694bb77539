import math

import pytest
import torch

from meddtfm.flow.solver import SOLVERS, SolverResult, integrate, shift_time, time_grid

ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
STAGES = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
A = 0.8


def linear(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = a x, solution x(t) = x(0) exp(a t)."""
    return A * x


def time_dependent(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = cos(t) x, solution x(t) = x(0) exp(sin t); t (B,) checks the stage times."""
    assert t.shape == (x.shape[0],)
    return torch.cos(t)[:, None] * x


EXACT = {linear: lambda t: math.exp(A * t), time_dependent: lambda t: math.exp(math.sin(t))}


@pytest.fixture
def x0() -> torch.Tensor:
    return torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("field", [linear, time_dependent], ids=["linear", "time_dependent"])
@pytest.mark.parametrize("method", list(ORDER))
def test_convergence_order(method, field, x0):
    n = 32 if method != "rk4" else 8  # in the asymptotic regime of every method
    exact = x0 * EXACT[field](1.0)
    errors = [(integrate(field, x0, method, steps=k).x - exact).abs().max().item() for k in (n, 2 * n)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(ORDER[method], abs=0.2)


@pytest.mark.parametrize("method", list(ORDER))
def test_nfe_is_steps_times_stages(method, x0):
    calls = []
    r = integrate(lambda x, t: calls.append(1) or linear(x, t), x0, method, steps=5)
    assert isinstance(r, SolverResult)
    assert r.nfe == len(calls) == 5 * STAGES[method]


def test_dopri5_accuracy_and_nfe(x0):
    calls = []
    r = integrate(lambda x, t: calls.append(1) or time_dependent(x, t), x0, "dopri5", atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(r.x, x0 * EXACT[time_dependent](1.0), rtol=1e-7, atol=1e-7)
    assert r.nfe == len(calls) > 0


@pytest.mark.parametrize("t0,t1", [(0.0, 1.0), (1.0, 0.0)])
def test_dopri5_stays_inside_interval(t0, t1, x0):
    seen = []
    field = lambda x, t: seen.append(t) or time_dependent(x, t)  # noqa: E731
    integrate(field, x0, "dopri5", t0=t0, t1=t1, atol=1e-8, rtol=1e-8)
    seen_t = torch.cat(seen)  # without step_t, torchdiffeq steps past the end (to t ~ -0.06 backward)
    assert seen_t.min() >= -1e-12 and seen_t.max() <= 1 + 1e-12


@pytest.mark.parametrize("method", [*ORDER, "dopri5"])
def test_backward_integration(method, x0):
    x1 = x0 * EXACT[time_dependent](1.0)
    r = integrate(time_dependent, x1, method, steps=64 if method != "dopri5" else None, t0=1.0, t1=0.0)
    torch.testing.assert_close(r.x, x0, rtol=0, atol=2e-2 if method == "euler" else 1e-4)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_round_trip(method):
    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * x) * (1 + t[:, None, None]) - 0.5 * x

    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    steps = 16 if method == "rk4" else None
    inverted = integrate(field, x, method, steps=steps, t0=1.0, t1=0.0)
    back = integrate(field, inverted.x, method, steps=steps)
    torch.testing.assert_close(back.x, x, rtol=0, atol=1e-4 if method == "rk4" else 1e-3)


def test_exact_linear_path_one_euler_step():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    r = integrate(lambda x, t: x1 - x0, x0, "euler", steps=1)
    torch.testing.assert_close(r.x, x1)
    assert r.nfe == 1


def test_trajectory_and_times(x0):
    r = integrate(linear, x0, "heun", steps=4, return_trajectory=True)
    assert r.trajectory is not None and r.trajectory.shape == (5, *x0.shape)
    torch.testing.assert_close(r.trajectory[0], x0)
    torch.testing.assert_close(r.trajectory[-1], r.x)
    torch.testing.assert_close(r.times, torch.linspace(0, 1, 5, dtype=torch.float64))
    d = integrate(linear, x0, "dopri5", steps=4, return_trajectory=True)
    assert d.trajectory is not None and d.trajectory.shape == (5, *x0.shape)


def test_gradients_are_not_disabled():
    x = torch.randn(2, 3, requires_grad=True)
    integrate(linear, x, "midpoint", steps=2).x.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2, 3), (1 + A / 2 + A**2 / 8) ** 2))


def test_progress_bar_runs(x0):
    assert integrate(linear, x0, "euler", steps=3, progress=True).nfe == 3


@pytest.mark.parametrize("t0,t1", [(0.0, 1.0), (1.0, 0.0), (0.4, 1.0)])
def test_shifted_grid_monotone_with_exact_endpoints(t0, t1):
    g = time_grid(10, "shifted", shift=3.0, t0=t0, t1=t1, dtype=torch.float64)
    assert g.shape == (11,) and g[0].item() == t0 and g[-1].item() == t1
    d = g.diff() * (1 if t1 > t0 else -1)
    assert bool((d > 0).all())


def test_shifted_grid_concentrates_at_data_end():
    d = time_grid(20, "shifted", shift=3.0, dtype=torch.float64).diff()
    assert bool((d[1:] < d[:-1]).all())
    assert time_grid(20, "shifted", shift=1 / 3.0, dtype=torch.float64).diff()[0] < 1 / 20


def test_shift_properties():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(time_grid(10, "shifted", shift=1.0, dtype=torch.float64), t)
    torch.testing.assert_close(time_grid(10, "shifted", t0=1.0, t1=0.0), time_grid(10, "shifted").flip(0))
    torch.testing.assert_close(shift_time(shift_time(t, 3.0), 1 / 3.0), t)
    torch.testing.assert_close(shift_time(t, 1 / 3.0), 1 - shift_time(1 - t, 3.0))
    sub = time_grid(5, "shifted", t0=0.4)
    assert bool((sub.diff()[1:] < sub.diff()[:-1]).all())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "euler"},
        {"method": "rk5", "steps": 2},
        {"method": "euler", "steps": 2, "grid": torch.tensor([0.0, 1.0])},
        {"method": "euler", "grid": torch.tensor([0.0, 0.5, 0.4, 1.0])},
        {"method": "euler", "grid": torch.tensor([0.0])},
    ],
)
def test_invalid_arguments(kwargs, x0):
    with pytest.raises(ValueError):
        integrate(linear, x0, **kwargs)


def test_invalid_grid_arguments():
    for kwargs in ({"nfe_steps": 0}, {"nfe_steps": 2, "t0": 0.5, "t1": 0.5}, {"nfe_steps": 2, "kind": "cosine"}):
        with pytest.raises(ValueError):
            time_grid(**kwargs)
    with pytest.raises(ValueError):
        time_grid(4, "shifted", t0=-1.0)


def test_solvers_registry_lists_every_method_with_its_stages(x0):
    assert SOLVERS.names() == ("euler", "midpoint", "heun", "rk4", "dopri5")
    assert {name: SOLVERS[name].stages for name in STAGES} == STAGES
    assert SOLVERS["dopri5"].adaptive and not any(SOLVERS[name].adaptive for name in STAGES)
    assert "Heun" in SOLVERS.describe()
    with pytest.raises(ValueError, match="unknown solver 'rk5'; choose from euler"):
        integrate(linear, x0, "rk5", steps=2)
