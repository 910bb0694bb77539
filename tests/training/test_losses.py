import pytest
import torch

from meddtfm.models.discriminator import MultiScalePatchGAN
from meddtfm.training.losses import AdversarialLoss, DistillationLoss, FlowMatchingLoss, feature_matching


def test_flow_matching_loss_is_zero_only_for_the_target():
    target = torch.randn(2, 3, 8, 8)
    assert FlowMatchingLoss()(target, target) == 0
    assert FlowMatchingLoss()(target + 1, target) == pytest.approx(1.0)


def test_distillation_weights_levels_and_stops():
    teacher = [torch.randn(2, 4, 2, 2), torch.randn(2, 3, 4, 4)]
    shifted = [teacher[0] + 1, teacher[1] + 2]
    loss = DistillationLoss([0.5, 0.0], "l2", stop_step=10)
    total, levels = loss(shifted, teacher)
    assert total.item() == pytest.approx(0.5) and levels == [pytest.approx(1.0), 0.0]
    assert loss.active(9) and not loss.active(10)
    assert not DistillationLoss([0.0, 0.0]).active(0), "all lambda_i = 0 is 'Ours (no DT)'"


def test_cosine_distillation_ignores_scale():
    e = [torch.randn(2, 8, 4, 4)]
    total, _ = DistillationLoss([1.0], "cosine")([3 * e[0]], e)
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    total, _ = DistillationLoss([1.0], "cosine")([-e[0]], e)
    assert total.item() == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["hinge", "lsgan"])
def test_adversarial_losses_prefer_correct_logits(kind):
    adv = AdversarialLoss(kind)
    good, bad = [torch.full((2, 1, 3, 3), 1.0)], [torch.full((2, 1, 3, 3), -1.0)]
    assert adv.discriminator(real=good, fake=bad if kind == "hinge" else [torch.zeros(2, 1, 3, 3)]) == 0
    assert adv.discriminator(real=bad, fake=good) > 1
    assert adv.generator(good) < adv.generator(bad)


def test_multiscale_discriminator_conditions_on_mask():
    torch.manual_seed(0)
    d = MultiScalePatchGAN(image_channels=3, mask_channels=2, channels=8, num_layers=2, num_scales=2)
    img = torch.randn(2, 3, 32, 32)
    out = d(img, torch.zeros(2, 2, 32, 32))
    assert len(out) == 2 and out[1][-1].shape[-1] < out[0][-1].shape[-1]
    other = d(img, torch.ones(2, 2, 32, 32))
    assert not torch.allclose(out[0][-1], other[0][-1])
    assert feature_matching(out, out) == 0 and feature_matching(out, other) > 0
