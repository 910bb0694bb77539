"""The EMA's warm-up: early updates follow the model, later ones reach the configured decay."""
import pytest
import torch
from torch import nn

from meddtfm.training.loop import ema_decay_at, ema_of


def test_decay_ramps_up_to_the_configured_value():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(100_000, 0.999) == 0.999
    decays = [ema_decay_at(n, 0.999) for n in range(0, 5000, 500)]
    assert decays == sorted(decays)


def test_initial_weights_fade_within_a_short_run():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ema_of(net, 0.999)
    ema.update_parameters(net)  # first call copies the initial weights
    for _ in range(2000):
        with torch.no_grad():
            net[0].weight.fill_(1.0)
            net[1].num_batches_tracked += 1
        ema.update_parameters(net)
    # With a fixed 0.999 the initial weights would still weigh 0.999**2000 = 0.135 here.
    assert torch.allclose(ema.module[0].weight, torch.ones(3, 3), atol=1e-3)
    assert int(ema.module[1].num_batches_tracked) == 2000
