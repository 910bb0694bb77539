import pytest
import torch

from meddtfm.flow.path import LinearPath, PathSample, expand_time, one_step_estimate, sample_time


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 2, 5, 6, generator=g), torch.rand(4, 2, 5, 6, generator=g) * 2 - 1


def test_endpoints_and_target(pair):
    x0, x1 = pair
    path = LinearPath()
    s0 = path.sample(x0, x1, torch.zeros(4))
    s1 = path.sample(x0, x1, torch.ones(4))
    assert isinstance(s0, PathSample)
    torch.testing.assert_close(s0.x_t, x0)
    torch.testing.assert_close(s1.x_t, x1)
    torch.testing.assert_close(s0.dx_t, x1 - x0)


def test_time_broadcast_per_sample(pair):
    x0, x1 = pair
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    s = LinearPath().sample(x0, x1, t)
    assert s.x_t.shape == x0.shape and s.t.shape == (4,)
    for i, ti in enumerate(t):
        torch.testing.assert_close(s.x_t[i], (1 - ti) * x0[i] + ti * x1[i])


def test_target_is_time_derivative(pair):
    x0, x1 = (x.double() for x in pair)
    t, h = torch.full((4,), 0.3, dtype=torch.float64), 1e-3
    path = LinearPath()
    dx = (path.sample(x0, x1, t + h).x_t - path.sample(x0, x1, t).x_t) / h
    torch.testing.assert_close(dx, path.sample(x0, x1, t).dx_t)


def test_one_step_estimate_exact_for_true_velocity(pair):
    x0, x1 = pair
    t = torch.tensor([0.0, 0.1, 0.7, 0.99])
    s = LinearPath().sample(x0, x1, t)
    torch.testing.assert_close(one_step_estimate(s.x_t, s.t, s.dx_t), x1)


def test_bad_time_shape(pair):
    x0, x1 = pair
    with pytest.raises(ValueError):
        LinearPath().sample(x0, x1, torch.zeros(4, 1))
    with pytest.raises(ValueError):
        expand_time(torch.zeros(3), x0)


@pytest.mark.parametrize("kind", ["uniform", "logit_normal"])
def test_sample_time_range_and_reproducibility(kind):
    a = sample_time(4096, kind, generator=torch.Generator().manual_seed(1))
    b = sample_time(4096, kind, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4096,) and a.dtype == torch.float32
    assert bool(((a >= 0) & (a < 1)).all())
    torch.testing.assert_close(a, b)


def test_logit_normal_location():
    g = torch.Generator().manual_seed(2)
    t = sample_time(20000, "logit_normal", mean=1.0, std=0.5, generator=g)
    assert abs(t.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    u = sample_time(20000, "uniform", generator=g)
    assert abs(u.mean().item() - 0.5) < 0.01


def test_sample_time_unknown_kind():
    with pytest.raises(ValueError):
        sample_time(3, "beta")  # type: ignore[arg-type]
