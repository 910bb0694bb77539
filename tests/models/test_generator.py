"""Tests for meddtfm.models.generator (VelocityNet: FM_i, BM_i, reference seeding), on tiny widths."""

import time
from collections.abc import Iterator

import pytest
import torch

from meddtfm.config import GeneratorConfig
from meddtfm.models.cond import Condition
from meddtfm.models.generator import BridgeModule, VelocityNet, build_generator

VOCAB, REF = 20, 12


def tiny_config(**overrides: object) -> GeneratorConfig:
    kwargs = dict(base_channels=8, channel_mult=[1, 2, 2, 4], num_res_blocks=1, cond_channels=[8, 8, 4, 4],
                  text_dim=16, text_layers=1, text_heads=2, max_caption_len=8, vocab_size=VOCAB, time_dim=32,
                  attention_head_dim=16, dropout=0.0)
    kwargs.update(overrides)
    return GeneratorConfig(**kwargs)  # type: ignore[arg-type]


def tiny(image_channels: int = 4, mask_classes: int = 3, ref_channels: int = REF, **overrides: object) -> VelocityNet:
    torch.manual_seed(0)
    return build_generator(tiny_config(**overrides), image_channels, mask_classes, ref_channels)


def trained_like(net: VelocityNet) -> VelocityNet:
    """Jitter every weight: residual branches start near zero, which hides the conditions' effects."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def inputs(b: int = 2, c: int = 4, k: int = 3, size: int = 32) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(2)
    mask = (torch.rand(b, k, size, size) > 0.7).float()
    return torch.randn(b, c, size, size), torch.rand(b), mask, torch.randint(3, VOCAB, (b, 8))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models are overhead-bound; one thread avoids OpenMP spin-waits on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("c", [1, 3, 4])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_velocity_and_feature_shapes(c: int, k: int, size: int) -> None:
    net = tiny(c, k)
    x, t, mask, tokens = inputs(2, c, k, size)
    f_ref = torch.randn(2, REF, size // 32, size // 32)
    v, feats = net(x, t, net.condition(mask, tokens, 2), f_ref, return_features=True)
    assert v.shape == x.shape
    assert net.level_channels == [32, 16, 16, 8]
    assert [tuple(f.shape) for f in feats] == [(2, ch, size // 2 ** (3 - i), size // 2 ** (3 - i))
                                               for i, ch in enumerate(net.level_channels)]
    assert torch.equal(net(x, t, net.condition(mask, tokens, 2), f_ref), v)


@pytest.mark.parametrize("mode", ["spade", "concat"])
def test_conditions_change_the_velocity(mode: str) -> None:
    net = trained_like(tiny(bridge_mode=mode)).eval()
    x, t, mask, tokens = inputs()
    f_ref = torch.randn(2, REF, 1, 1)
    base = net(x, t, net.condition(mask, tokens, 2), f_ref)
    for other in (net(x, t, net.condition(mask, tokens, 2)),  # no reference: the learned null
                  net(x, t, net.condition(mask, tokens, 2), torch.randn(2, REF, 1, 1)),
                  net(x, t, net.condition(torch.zeros_like(mask), tokens, 2), f_ref),  # empty mask
                  net(x, t, net.condition(None, tokens, 2), f_ref),  # null mask
                  net(x, t, net.condition(mask, torch.randint(3, VOCAB, (2, 8)), 2), f_ref),
                  net(x, t.flip(0), net.condition(mask, tokens, 2), f_ref)):
        assert (other - base).abs().amax() > 1e-3


def test_null_empty_mask_differ_and_nulls_are_consistent() -> None:
    net = trained_like(tiny()).eval()
    x, t, mask, tokens = inputs(4)
    null = net(x, t, net.condition(None, None, 4))
    dropped = net(x, t, net.condition(mask, tokens, 4, drop_mask=torch.ones(4, dtype=torch.bool),
                                      drop_caption=torch.ones(4, dtype=torch.bool)))
    torch.testing.assert_close(dropped, null)
    empty = net(x, t, net.condition(torch.zeros_like(mask), None, 4))
    assert (empty - null).abs().amax() > 1e-3


def test_mixed_batch_dropping_matches_per_sample_runs() -> None:
    net = trained_like(tiny()).eval()
    x, t, mask, tokens = inputs(4)
    f_ref = torch.randn(4, REF, 1, 1)
    drop_m, drop_c, drop_r = (torch.tensor(f) for f in ([1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]))
    drop_m, drop_c, drop_r = drop_m.bool(), drop_c.bool(), drop_r.bool()
    mixed = net(x, t, net.condition(mask, tokens, 4, drop_m, drop_c), f_ref, drop_ref=drop_r)
    for i in range(4):
        one = slice(i, i + 1)
        cond = net.condition(None if drop_m[i] else mask[one], None if drop_c[i] else tokens[one], 1)
        v = net(x[one], t[one], cond, None if drop_r[i] else f_ref[one])
        torch.testing.assert_close(mixed[one], v, rtol=1e-4, atol=1e-5)


def test_caption_only_mask_only_and_no_reference() -> None:
    x, t, mask, tokens = inputs()
    caption_only = tiny(4, 0, 0)
    assert caption_only(x, t, caption_only.condition(None, tokens, 2)).shape == x.shape
    mask_only = tiny(4, 3, 0, vocab_size=0)
    assert mask_only.cond_encoder.text is None
    assert mask_only(x, 0.5 * torch.ones(()), mask_only.condition(mask, None, 2)).shape == x.shape  # scalar t
    with pytest.raises(ValueError, match="ref_channels=0"):
        mask_only(x, t, mask_only.condition(mask, None, 2), torch.randn(2, REF, 1, 1))


@pytest.mark.parametrize("mode", ["spade", "concat"])
def test_gradient_reaches_every_parameter(mode: str) -> None:
    net = tiny(bridge_mode=mode, dropout=0.1).train()
    x, t, mask, tokens = inputs(4)
    flags = torch.tensor([True, False, False, True])
    cond = net.condition(mask, tokens, 4, drop_mask=flags, drop_caption=flags.roll(1))
    v, feats = net(x, t, cond, torch.randn(4, REF, 1, 1), return_features=True, drop_ref=flags.roll(2))
    (v.square().mean() + sum(f.square().mean() for f in feats)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_determinism_under_seed() -> None:
    a, b = tiny(dropout=0.1), tiny(dropout=0.1)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    x, t, mask, tokens = inputs()
    outs = []
    for net in (a, b):
        torch.manual_seed(3)
        outs.append(net.train()(x, t, net.condition(mask, tokens, 2)))
    assert torch.equal(*outs)


def test_tiny_forward_backward_is_fast(one_thread: None) -> None:
    net = tiny()
    x, t, mask, tokens = inputs(2, 4, 3, 32)
    f_ref = torch.randn(2, REF, 1, 1)

    def step() -> float:
        start = time.perf_counter()
        v, feats = net(x, t, net.condition(mask, tokens, 2), f_ref, return_features=True)
        (v.square().mean() + sum(f.square().mean() for f in feats)).backward()
        return time.perf_counter() - start

    step()  # warm-up
    assert min(step() for _ in range(3)) < 1.0


def test_bad_inputs_and_configs_raise() -> None:
    net = tiny()
    x, t, mask, tokens = inputs()
    cond = net.condition(mask, tokens, 2)
    with pytest.raises(ValueError, match="x_t"):
        net(torch.randn(2, 4, 36, 36), t, cond)
    with pytest.raises(ValueError, match="x_t"):
        net(torch.randn(2, 3, 32, 32), t, cond)
    with pytest.raises(ValueError, match="sizes differ"):
        net(torch.randn(2, 4, 64, 64), t, cond)
    with pytest.raises(ValueError, match="levels"):
        net(x, t, Condition(cond.levels[1:], cond.vector))
    with pytest.raises(ValueError, match="t must"):
        net(x, torch.rand(3), cond)
    with pytest.raises(ValueError, match="f_ref"):
        net(x, t, cond, torch.randn(2, REF + 1, 1, 1))
    with pytest.raises(ValueError, match="bridge_mode"):
        tiny_config(bridge_mode="film")
    with pytest.raises(ValueError, match="cond_channels"):
        tiny_config(cond_channels=[8, 8, 4])
    with pytest.raises(ValueError, match="bridge mode"):
        BridgeModule(8, 4, 16, "add", 0.0, 32)
