"""Tests for meddtfm.models.kan.KANLinear."""

import pytest
import torch

from meddtfm.models.kan import KANLinear


@pytest.mark.parametrize(
    ("grid_size", "order", "grid_range"), [(5, 3, (-1.0, 1.0)), (8, 2, (0.0, 4.0)), (3, 1, (-2.0, 1.0))]
)
def test_partition_of_unity_inside_range(grid_size: int, order: int, grid_range: tuple[float, float]) -> None:
    layer = KANLinear(4, 2, grid_size=grid_size, spline_order=order, grid_range=grid_range)
    x = torch.linspace(*grid_range, 201).unsqueeze(-1).expand(-1, 4)
    bases = layer.b_splines(x)
    assert bases.shape == (201, 4, grid_size + order)
    assert (bases >= 0).all()
    torch.testing.assert_close(bases.sum(-1), torch.ones(201, 4), atol=1e-5, rtol=0)


def test_bases_match_scipy() -> None:
    interpolate = pytest.importorskip("scipy.interpolate")
    layer = KANLinear(1, 1, grid_size=6, spline_order=3, grid_range=(-1.0, 1.0))
    x = torch.linspace(-1.0, 1.0, 57, dtype=torch.float64)
    ours = layer.double().b_splines(x.unsqueeze(-1))[:, 0]
    ref = interpolate.BSpline.design_matrix(x.numpy(), layer.grid.numpy(), 3).toarray()
    # the knots are stored in float32 (uniform to ~1e-7); the recursion assumes them exactly uniform
    torch.testing.assert_close(ours, torch.from_numpy(ref), atol=1e-5, rtol=0)


def test_outside_range_spline_fades_then_vanishes() -> None:
    torch.manual_seed(0)
    layer = KANLinear(3, 5, grid_size=5, spline_order=3, grid_range=(-1.0, 1.0))
    step = 2.0 / 5
    in_extension = torch.tensor([[1.0 + step], [-1.0 - 2 * step]]).expand(-1, 3)
    sums = layer.b_splines(in_extension).sum(-1)
    assert ((sums > 0) & (sums < 1)).all()

    far = torch.tensor([[1.0 + 3 * step + 1e-3], [-5.0], [40.0]]).expand(-1, 3).clone()
    assert (layer.b_splines(far) == 0).all()
    out = layer(far)
    base_only = torch.nn.functional.silu(far) @ layer.base_weight.T
    torch.testing.assert_close(out, base_only)
    out.sum().backward()
    assert torch.isfinite(layer.base_weight.grad).all() and layer.base_weight.grad.abs().sum() > 0
    assert (layer.spline_weight.grad == 0).all()


@pytest.mark.parametrize("lead", [(), (7,), (2, 3, 5)])
def test_output_shape_with_leading_dims(lead: tuple[int, ...]) -> None:
    layer = KANLinear(6, 4)
    assert layer(torch.randn(*lead, 6)).shape == (*lead, 4)
    with pytest.raises(ValueError, match="last dim"):
        layer.b_splines(torch.randn(3, 5))


@pytest.mark.parametrize("standalone", [True, False])
def test_gradients_reach_all_parameters(standalone: bool) -> None:
    torch.manual_seed(0)
    layer = KANLinear(6, 4, standalone_scale_spline=standalone)
    x = torch.rand(32, 6) * 2 - 1
    (layer(x) ** 2).sum().backward()
    params = dict(layer.named_parameters())
    assert ("spline_scaler" in params) == standalone
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    reg = layer.regularization_loss()
    assert reg.ndim == 0 and torch.isfinite(reg)


def test_deterministic_under_fixed_seed() -> None:
    x = torch.randn(10, 6)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append(KANLinear(6, 4)(x))
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)


def test_rejects_bad_grid() -> None:
    with pytest.raises(ValueError):
        KANLinear(2, 2, grid_range=(1.0, -1.0))
    with pytest.raises(ValueError):
        KANLinear(2, 2, grid_size=0)
