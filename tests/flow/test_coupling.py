import itertools

import pytest
import torch

from meddtfm.flow.coupling import independent_coupling, ot_coupling, ot_permutation, squared_distances


def _mean_sq(x0: torch.Tensor, x1: torch.Tensor) -> float:
    return (x0 - x1).flatten(1).pow(2).sum(1).mean().item()


def test_ot_reduces_pair_distance():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(32, 2, 4, 4, generator=g)
    x1 = torch.randn(32, 2, 4, 4, generator=g) * 0.5 + 1.0
    x0p, x1p = ot_coupling(x0, x1)
    assert x1p is x1 and x0p.shape == x0.shape
    assert _mean_sq(x0p, x1) < _mean_sq(x0, x1)


def test_permutation_valid_and_rows_preserved():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(17, 3, 5, generator=g), torch.randn(17, 3, 5, generator=g)
    sigma = ot_permutation(x0, x1)
    assert sigma.dtype == torch.long and sigma.device == x0.device
    assert torch.equal(sigma.sort().values, torch.arange(17))
    torch.testing.assert_close(ot_coupling(x0, x1)[0], x0[sigma], rtol=0, atol=0)


def test_matches_brute_force_optimum():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    cost = squared_distances(x0, x1)
    best = min(sum(cost[p[j], j].item() for j in range(6)) for p in itertools.permutations(range(6)))
    sigma = ot_permutation(x0, x1)
    assert sum(cost[sigma[j], j].item() for j in range(6)) == pytest.approx(best, rel=1e-12)


def test_identical_batch_gives_identity():
    x1 = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ot_permutation(x1.clone(), x1), torch.arange(12))


def test_shuffled_batch_is_unshuffled():
    g = torch.Generator().manual_seed(4)
    x1 = torch.randn(10, 3, 4, 4, generator=g)
    shuffle = torch.randperm(10, generator=g)
    x0p, _ = ot_coupling(x1[shuffle], x1)
    assert torch.equal(x0p, x1)


def test_cost_matches_direct_formula():
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(5, 2, 3, generator=g), torch.randn(5, 2, 3, generator=g)
    direct = (x0.double().flatten(1)[:, None] - x1.double().flatten(1)[None]).pow(2).sum(-1)
    torch.testing.assert_close(squared_distances(x0, x1), direct)


def test_independent_coupling_is_identity():
    x0, x1 = torch.randn(3, 2), torch.randn(3, 2)
    a, b = independent_coupling(x0, x1)
    assert a is x0 and b is x1


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        ot_coupling(torch.randn(4, 3), torch.randn(5, 3))
