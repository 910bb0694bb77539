"""Tests for meddtfm.models.ukan (UKAN, FrozenTeacher), on tiny widths."""


import pytest
import torch
import torch.nn.functional as F

from meddtfm.models.ukan import UKAN, FrozenTeacher

TINY = (4, 8, 16, 24, 32)


def tiny(in_channels: int = 1, num_classes: int = 1, **kwargs: object) -> UKAN:
    torch.manual_seed(0)
    return UKAN(in_channels, num_classes, widths=TINY, **kwargs)


@pytest.mark.parametrize("in_channels", [1, 3, 4])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_forward_and_encode_shapes(in_channels: int, num_classes: int) -> None:
    net = tiny(in_channels, num_classes)
    x = torch.randn(2, in_channels, 64, 32)
    assert net(x).shape == (2, num_classes, 64, 32)
    feats = net.encode(x)
    expected = [(2, c, 64 // s, 32 // s) for c, s in zip(TINY[:0:-1], (32, 16, 8, 4))]
    assert [tuple(f.shape) for f in feats] == expected


def test_feature_channels_and_strides_match_encode() -> None:
    net = tiny(3, 2)
    assert net.feature_channels == [32, 24, 16, 8]
    assert net.feature_strides == [32, 16, 8, 4]
    assert UKAN(4, 3).feature_channels == [512, 320, 256, 64]
    x = torch.randn(2, 3, 64, 64)
    for f, c, s in zip(net.encode(x), net.feature_channels, net.feature_strides):
        assert f.shape[1:] == (c, 64 // s, 64 // s)


@pytest.mark.parametrize("shape", [(2, 1, 48, 64), (2, 1, 64, 40), (2, 2, 64, 64), (1, 64, 64)])
def test_bad_input_raises(shape: tuple[int, ...]) -> None:
    net = tiny()
    with pytest.raises(ValueError, match="UKAN"):
        net(torch.randn(shape))
    with pytest.raises(ValueError, match="UKAN"):
        net.encode(torch.randn(shape))


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="widths"):
        UKAN(1, 1, widths=(4, 8, 16, 24))
    with pytest.raises(ValueError, match="depths"):
        UKAN(1, 1, widths=TINY, depths=(1,))


def test_gradients_reach_every_parameter() -> None:
    net = tiny(2, 3, depths=(2, 1), drop_path=0.1).train()
    (net(torch.randn(2, 2, 64, 64)) ** 2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_frozen_teacher_is_frozen() -> None:
    net = tiny(3, 1)
    net.train()
    net(torch.randn(4, 3, 64, 64))  # give BN non-trivial running statistics
    teacher = FrozenTeacher(net)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert teacher.feature_channels == net.feature_channels
    assert teacher.feature_strides == net.feature_strides

    parent = torch.nn.ModuleDict({"teacher": teacher, "student": torch.nn.Conv2d(3, 3, 1)})
    parent.train()
    teacher.train(True)
    assert parent["student"].training
    assert not any(m.training for m in teacher.modules())

    stats = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    feats = teacher(x)
    assert all(not f.requires_grad for f in feats)
    for k, v in net.state_dict().items():
        assert torch.equal(v, stats[k]), k
    torch.testing.assert_close(feats[0], teacher(x)[0])

    student = torch.zeros_like(feats[0], requires_grad=True)
    F.mse_loss(student, feats[0]).backward()  # teacher outputs are usable as loss targets
    assert student.grad is not None


def _disc_batch(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy images of a bright disc on a dark background, and their disc masks (2, 1, S, S)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    discs = [(19, 24, 10), (40, 38, 14)]
    masks = torch.stack([((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float() for cy, cx, r in discs]).unsqueeze(1)
    noise = torch.randn(masks.shape, generator=torch.Generator().manual_seed(0))
    return masks - 0.5 + 0.3 * noise, masks


def test_overfits_two_disc_images() -> None:
    net = tiny(1, 1)
    x, masks = _disc_batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        logits = net(x)
        probs = logits.sigmoid()
        soft_dice = (2 * (probs * masks).sum() + 1) / (probs.sum() + masks.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, masks) + 1 - soft_dice
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = (net(x) > 0).float()
    dice = 2 * (pred * masks).sum() / (pred.sum() + masks.sum())
    assert dice > 0.8
