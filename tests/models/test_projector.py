"""Tests for meddtfm.models.projector (Projector, ProjectorSet) against a real tiny U-KAN teacher."""

import pytest
import torch
import torch.nn.functional as F

from meddtfm.config import GeneratorConfig
from meddtfm.models.generator import build_generator
from meddtfm.models.projector import Projector, ProjectorSet
from meddtfm.models.ukan import UKAN, FrozenTeacher


def tiny_generator(image_channels: int, ref_channels: int):  # type: ignore[no-untyped-def]
    cfg = GeneratorConfig(base_channels=8, channel_mult=[1, 2, 2, 4], num_res_blocks=1, cond_channels=[8, 8, 4, 4],
                          text_dim=16, vocab_size=0, time_dim=32, attention_head_dim=16, dropout=0.0)
    return build_generator(cfg, image_channels, 3, ref_channels)


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("size", [32, 64])
def test_projections_match_the_teacher_features(kind: str, size: int) -> None:
    torch.manual_seed(0)
    teacher = FrozenTeacher(UKAN(4, 3, widths=(4, 8, 16, 24, 32)))
    net = tiny_generator(4, teacher.feature_channels[0])
    projectors = ProjectorSet(net.level_channels, teacher.feature_channels, kind)
    x1, x_t, t = torch.randn(2, 4, size, size), torch.randn(2, 4, size, size), torch.rand(2)
    targets = teacher(x1)
    mask = (torch.rand(2, 3, size, size) > 0.8).float()
    v, feats = net(x_t, t, net.condition(mask, None, 2), f_ref=targets[0], return_features=True)
    preds = projectors(feats, [e.shape for e in targets])
    assert [p.shape for p in preds] == [e.shape for e in targets]
    loss = sum(F.mse_loss(p, e) for p, e in zip(preds, targets)) + v.square().mean()
    loss.backward()
    for name, p in [*projectors.named_parameters(), *net.named_parameters()]:
        if not name.startswith(("null_ref", "cond_encoder.null_levels")):  # nothing is dropped here
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_resizing_projects_first_then_pools_or_upsamples(kind: str) -> None:
    torch.manual_seed(0)
    head = Projector(6, 5, kind)
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(head(x, (8, 8)), head.net(x))
    torch.testing.assert_close(head(x, (2, 2)), F.adaptive_avg_pool2d(head.net(x), (2, 2)))
    up = F.interpolate(head.net(x), size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(head(x, (16, 16)), up)
    assert head(x, (4, 12)).shape == (2, 5, 4, 12)


def test_conv_head_keeps_signal_on_a_one_pixel_target() -> None:
    torch.manual_seed(0)
    head = Projector(8, 8, "conv")  # GroupNorm with 8 groups of 1 channel: must not see a 1x1 grid
    a, b = head(torch.randn(2, 8, 4, 4), (1, 1)), head(torch.randn(2, 8, 4, 4), (1, 1))
    assert (a - b).abs().amax() > 1e-3


def test_levels_without_a_head_are_skipped() -> None:
    torch.manual_seed(0)
    full, some = ProjectorSet([8, 4], [16, 12]), ProjectorSet([8, 4], [16, 12], levels=[1])
    assert list(some.heads) == ["1"] and sum(p.numel() for p in some.parameters()) < sum(
        p.numel() for p in full.parameters())
    some.heads["1"].load_state_dict(full.heads["1"].state_dict())
    feats, shapes = [torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8)], [(1, 16, 2, 2), (1, 12, 8, 8)]
    out = some(feats, shapes)
    assert out[0] is None
    torch.testing.assert_close(out[1], full(feats, shapes)[1])
    assert set(full.state_dict()) >= set(some.state_dict())  # same keys as before levels existed ("heads.1....")
    for levels in ([], [2], [-1]):
        with pytest.raises(ValueError, match="levels"):
            ProjectorSet([8, 4], [16, 12], levels=levels)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="kind"):
        Projector(4, 4, "linear")
    with pytest.raises(ValueError, match="one teacher width"):
        ProjectorSet([8, 4], [16])
    projectors = ProjectorSet([8, 4], [16, 12])
    feats = [torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8)]
    with pytest.raises(ValueError, match="channels"):
        projectors(feats, [(1, 16, 2, 2), (1, 13, 4, 4)])
    with pytest.raises(ValueError, match="need 2"):
        projectors(feats[:1], [(2, 2)])
    with pytest.raises(ValueError, match="projector expects"):
        projectors(feats[::-1], [(2, 2), (4, 4)])
    assert [p.shape for p in projectors(feats, [(2, 2), (4, 4)])] == [(1, 16, 2, 2), (1, 12, 4, 4)]
