"""``MaskVariation``: parsing, determinism by seed, binary output, and a moved lesion kept in its region."""
import pytest
import torch

from meddtfm.augmentation import MaskVariation


def _mask() -> torch.Tensor:
    m = torch.zeros(2, 32, 32)
    m[0, 10:16, 12:20] = 1
    m[1, 12:14, 14:17] = 1
    return m


def test_parse_round_trips_and_none_is_inactive():
    v = MaskVariation.parse("flip, rotate=15,scale=0.1,elastic=2,shift")
    assert (v.flip, v.rotate, v.scale, v.elastic, v.shift) == (True, 15.0, 0.1, 2.0, True)
    assert MaskVariation.parse(str(v)) == v and str(MaskVariation.parse("none")) == "none"
    assert not MaskVariation.parse("none").active
    mask = _mask()
    same, changed = MaskVariation().apply(mask, torch.ones(32, 32, dtype=torch.bool), seed=3)
    assert same is mask and not changed


@pytest.mark.parametrize("text, message", [
    ("twist", "unknown mask variation 'twist'"),
    ("rotate=a", "give rotate=NUMBER"),
    ("scale=1.5", "must be >= 0 and < 1"),
    ("flip=1", "flip takes no value"),
])
def test_bad_variations_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        MaskVariation.parse(text)


def test_the_seed_fixes_the_variation_and_the_mask_stays_binary():
    v, mask, region = MaskVariation.parse("flip,rotate=20,scale=0.2,elastic=2"), _mask(), torch.ones(32, 32).bool()
    a, changed = v.apply(mask, region, seed=1)
    b, _ = v.apply(mask, region, seed=1)
    c, _ = v.apply(mask, region, seed=2)
    assert changed and torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == mask.shape and set(a.unique().tolist()) <= {0.0, 1.0} and type(a) is torch.Tensor
    assert 0.5 * mask.sum() < a.sum() < 2 * mask.sum(), "a rotation and a 20% zoom keep the lesion's size roughly"


def test_shift_moves_the_lesion_inside_the_region_only():
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[4:28, 2:14] = True  # the lesion (columns 12..19) starts mostly outside it
    mask = _mask()
    for seed in range(8):
        moved, changed = MaskVariation(shift=True).apply(mask, region, seed)
        assert changed and moved.sum() == mask.sum(), "a move keeps every pixel"
        assert (moved.any(0) & region).sum() >= 0.95 * moved.any(0).sum()


def test_a_variation_that_empties_the_mask_gives_it_back():
    tiny = torch.zeros(1, 32, 32)
    tiny[0, 0, 0] = 1  # a corner pixel that a rotation drops
    out, changed = MaskVariation(rotate=45).apply(tiny, torch.ones(32, 32).bool(), seed=0)
    assert out.any() and (torch.equal(out, tiny) or changed)
