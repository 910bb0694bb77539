"""Tests for meddtfm.models.cond (CondEncoder, Condition): levels, nulls and per-sample dropping."""

import pytest
import torch

from meddtfm.models.cond import CondEncoder, apply_drop

LEVELS = [16, 12, 8, 4]  # channels of C_0 .. C_3, coarse to fine


def encoder(mask_classes: int = 3, vocab_size: int = 20) -> CondEncoder:
    torch.manual_seed(0)
    return CondEncoder(mask_classes, LEVELS, vector_dim=16, vocab_size=vocab_size, text_layers=1, text_heads=2,
                       max_caption_len=8).eval()


def lesion_mask(b: int, k: int, size: int) -> torch.Tensor:
    mask = torch.zeros(b, k, size, size)
    mask[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    return mask


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_level_shapes_coarse_to_fine(k: int, size: int) -> None:
    cond = encoder(k)(lesion_mask(2, k, size), torch.randint(3, 20, (2, 8)), batch_size=2)
    assert [tuple(c.shape) for c in cond.levels] == [(2, ch, size // 2 ** (3 - i), size // 2 ** (3 - i))
                                                     for i, ch in enumerate(LEVELS)]
    assert cond.vector.shape == (2, 16) and cond.batch_size == 2


def test_absent_conditions_are_broadcastable_nulls() -> None:
    enc = encoder()
    cond = enc(None, None, batch_size=3)
    assert [tuple(c.shape) for c in cond.levels] == [(3, ch, 1, 1) for ch in LEVELS]
    for c, null in zip(cond.levels, enc.null_levels):
        torch.testing.assert_close(c[:, :, 0, 0], null.expand(3, -1))
    torch.testing.assert_close(cond.vector, enc.null_vector.expand(3, -1))


def test_null_differs_from_empty_mask_and_empty_caption() -> None:
    enc = encoder()
    empty = enc(torch.zeros(2, 3, 32, 32), torch.tensor([[2] + [0] * 7] * 2), batch_size=2)  # healthy, caption ""
    null = enc(None, None, batch_size=2)
    for e, n in zip(empty.levels, null.levels):
        assert (e - n).abs().amax() > 1e-3
    assert (empty.vector - null.vector).abs().amax() > 1e-3


def test_per_sample_dropping_in_a_mixed_batch() -> None:
    enc = encoder()
    mask, tokens = lesion_mask(4, 3, 32), torch.randint(3, 20, (4, 8))
    mask[1:] = torch.rand(3, 3, 32, 32).round()
    drop_mask, drop_caption = torch.tensor([True, False, True, False]), torch.tensor([False, True, True, False])
    mixed = enc(mask, tokens, 4, drop_mask=drop_mask, drop_caption=drop_caption)
    full, null = enc(mask, tokens, 4), enc(None, None, 4)
    for m, f, n in zip(mixed.levels, full.levels, null.levels):
        torch.testing.assert_close(m[~drop_mask], f[~drop_mask])
        torch.testing.assert_close(m[drop_mask], n[drop_mask].expand_as(m[drop_mask]))
    torch.testing.assert_close(mixed.vector[~drop_caption], full.vector[~drop_caption])
    torch.testing.assert_close(mixed.vector[drop_caption], null.vector[drop_caption])


def test_mask_only_and_caption_only_encoders() -> None:
    mask_only, caption_only = encoder(3, vocab_size=0), encoder(0, vocab_size=20)
    assert mask_only.text is None and caption_only.pyramid is None
    cond = mask_only(lesion_mask(2, 3, 32), None, 2)
    assert cond.levels[-1].shape == (2, 4, 32, 32)
    torch.testing.assert_close(cond.vector, mask_only.null_vector.expand(2, -1))
    cond = caption_only(None, torch.randint(3, 20, (2, 8)), 2)
    assert cond.levels[0].shape == (2, 16, 1, 1) and cond.vector.shape == (2, 16)
    with pytest.raises(ValueError, match="mask_classes=0"):
        caption_only(lesion_mask(2, 3, 32), None, 2)
    with pytest.raises(ValueError, match="vocab_size=0"):
        mask_only(None, torch.randint(3, 20, (2, 8)), 2)


def test_gradients_reach_pyramid_text_and_nulls() -> None:
    enc = encoder().train()
    cond = enc(lesion_mask(2, 3, 32), torch.randint(3, 20, (2, 8)), 2,
               drop_mask=torch.tensor([True, False]), drop_caption=torch.tensor([False, True]))
    (sum(c.square().mean() for c in cond.levels) + cond.vector.square().mean()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise() -> None:
    enc = encoder()
    with pytest.raises(ValueError, match="mask"):
        enc(lesion_mask(2, 2, 32), None, 2)
    with pytest.raises(ValueError, match="divisible"):
        enc(lesion_mask(2, 3, 36), None, 2)
    with pytest.raises(ValueError, match="batch size"):
        enc(None, torch.randint(3, 20, (3, 8)), 2)
    with pytest.raises(ValueError, match="drop flags"):
        enc(lesion_mask(2, 3, 32), None, 2, drop_mask=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="drop flags"):
        apply_drop(torch.zeros(2, 3), torch.zeros(1, 3), torch.tensor([True]))
    with pytest.raises(ValueError):
        CondEncoder(-1, LEVELS, 16)
