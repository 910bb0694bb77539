"""The EMA's warm-up: early updates follow the model, later ones reach the configured decay."""
import pytest
import torch
from torch import nn

from meddtfm.config import TrainConfig
from meddtfm.training.loop import ema_decay_at, ema_of, target_ema_decay


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


def test_a_half_life_in_images_sets_the_decay_from_the_global_batch():
    tc = TrainConfig(ema_halflife_images=240, ema_decay=0.5)
    images = 4 * 2 * 3  # per-device batch x processes x accumulation
    decay = target_ema_decay(tc, images)
    assert decay == pytest.approx(0.5 ** (24 / 240))
    assert decay ** (240 / images) == pytest.approx(0.5), "an update's weight halves every 240 images"
    assert target_ema_decay(TrainConfig(ema_decay=0.99), images) == 0.99, "0: train.ema_decay as before"
    # The warm-up still applies on top: min(decay, (1 + n) / (10 + n)).
    assert ema_decay_at(5, decay) == pytest.approx(6 / 15)
    assert ema_decay_at(1000, decay) == pytest.approx(decay)


def test_the_ema_after_n_updates_follows_the_half_life():
    net = nn.Linear(1, 1, bias=False)
    decay = target_ema_decay(TrainConfig(ema_halflife_images=64), 16)  # 0.5 ** (1 / 4)
    ema = ema_of(net, decay)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema.update_parameters(net)  # the first call copies the weights: 0
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.n_averaged.fill_(10_000)  # past the warm-up: each update keeps `decay` of the average
    for _ in range(4):  # 4 updates of 16 images: one half-life
        ema.update_parameters(net)
    assert ema.module.weight.item() == pytest.approx(0.5, rel=1e-6)
