import pytest
import torch

from meddtfm.models.discriminator import MultiScalePatchGAN
from meddtfm.training.losses import (
    AdversarialLoss,
    DistillationLoss,
    FlowMatchingLoss,
    OneStepImageLoss,
    R1Penalty,
    discriminator_feature_loss,
    spatial_normalize,
)


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
    assert discriminator_feature_loss(out, out) == 0 and discriminator_feature_loss(out, other) > 0


def test_spatial_normalize_centres_and_scales_each_channel_over_positions():
    e = torch.randn(2, 3, 4, 5) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 7.0
    z = spatial_normalize(e)
    assert z.shape == e.shape
    assert torch.allclose(z.mean((2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(z.flatten(2).std(2), torch.ones(2, 3), atol=1e-4)
    # The same map shifted and scaled per channel normalises to the same target.
    assert torch.allclose(spatial_normalize(3 * e - 2), z, atol=1e-4)


def test_distillation_normalizes_only_the_targets():
    teacher = [torch.randn(2, 4, 3, 3) * 4 + 1]
    target = spatial_normalize(teacher[0])
    total, _ = DistillationLoss([1.0], "l2", normalize="spatial")([target], teacher)
    assert total.item() == pytest.approx(0.0, abs=1e-10)
    plain, _ = DistillationLoss([1.0], "l2")([target], teacher)
    assert plain.item() > 1.0, "without the switch the same projection is far from the raw target"
    cosine, _ = DistillationLoss([1.0], "cosine", normalize="spatial")([2 * target], teacher)
    assert cosine.item() == pytest.approx(0.0, abs=1e-6)


def test_adversarial_weights_generalise_the_kept_rows():
    logits = [torch.tensor([[1.0, 3.0], [5.0, 7.0], [-2.0, 0.0]]).view(3, 1, 1, 2)]
    hinge, ls = AdversarialLoss("hinge"), AdversarialLoss("lsgan")
    w = torch.tensor([0.5, 0.0, 0.25])
    # Row means 2, 6, -1; the mean stays over all 3 rows.
    assert hinge.generator(logits, w).item() == pytest.approx(-(0.5 * 2 + 0.25 * -1) / 3)
    assert hinge.generator(logits, w > 0).item() == pytest.approx(-(2 - 1) / 3)
    lsq = [0.5 * ((1 - 1) ** 2 + (3 - 1) ** 2) / 2, 0.5 * ((-2 - 1) ** 2 + (0 - 1) ** 2) / 2]
    assert ls.generator(logits, w).item() == pytest.approx((0.5 * lsq[0] + 0.25 * lsq[1]) / 3)


def test_r1_penalty_equals_the_hand_computed_gradient_norm():
    # Two "scales" whose logits are known functions of x: sum_s sum_patches D_s = w.x + 0.5 ||x||^2,
    # so grad_x = w + x per row, and R1 = gamma / 2 * mean_b keep_b ||w + x_b||^2.
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(1, 2, 4, 4)
    logits = [(x * w).sum((1, 2, 3)).view(3, 1, 1, 1), (0.5 * x ** 2).view(3, 2, 4, 4)]
    keep = torch.tensor([True, False, True])
    expected = 0.5 * 10.0 * ((w + x.detach()) ** 2).sum((1, 2, 3)) * keep
    r1 = R1Penalty(10.0)(logits, x, keep)
    assert r1.item() == pytest.approx(expected.mean().item(), rel=1e-6)
    assert R1Penalty(10.0)(logits, x).item() == pytest.approx(
        (0.5 * 10.0 * ((w + x.detach()) ** 2).sum((1, 2, 3))).mean().item(), rel=1e-6)
    (grad,) = torch.autograd.grad(r1, x)  # the penalty is differentiable (it trains the discriminator)
    assert torch.allclose(grad[1], torch.zeros_like(grad[1])) and grad[0].abs().sum() > 0


def test_r1_penalty_on_a_patch_discriminator_trains_it():
    torch.manual_seed(0)
    d = MultiScalePatchGAN(image_channels=1, mask_channels=1, channels=4, num_layers=2, num_scales=2)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    logits = [out[-1] for out in d(x, torch.zeros(2, 1, 32, 32))]
    r1 = R1Penalty(1.0)(logits, x)
    (grad,) = torch.autograd.grad(sum(s.sum() for s in logits), x, retain_graph=True)
    assert r1.item() == pytest.approx(0.5 * grad.square().sum().item() / 2, rel=1e-5)
    r1.backward()
    grads = [p.grad for p in d.parameters() if p.grad is not None]  # the logits' own biases get none
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", ["l1", "pseudo_huber"])
def test_one_step_image_loss_counts_the_late_rows(kind):
    x1 = torch.zeros(3, 2, 4, 4)
    x1_hat = torch.stack([torch.full((2, 4, 4), v) for v in (0.1, 0.2, -0.4)])
    t = torch.tensor([0.9, 0.2, 0.5])
    loss = OneStepImageLoss(kind, min_t=0.5)(x1_hat, x1, t)
    if kind == "l1":
        expected = (0.1 + 0.4) / 3  # row 1 (t = 0.2 < 0.5) counts 0; the mean is over the 3 rows
    else:
        d = 32
        c = 0.00054 * d ** 0.5
        per_row = [((d * v ** 2 + c ** 2) ** 0.5 - c) / d ** 0.5 for v in (0.1, 0.4)]
        expected = sum(per_row) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert OneStepImageLoss(kind, min_t=0.5)(x1, x1, t).item() == pytest.approx(0.0, abs=1e-7)
