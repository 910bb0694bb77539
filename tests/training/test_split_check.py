import pytest

from meddtfm.config import DataConfig, to_dict
from meddtfm.training.split_check import SEGMENTER_KEYS, SplitMismatchError, check_same_split


def test_only_the_split_keys_count_and_every_difference_is_named() -> None:
    base = to_dict(DataConfig())
    check_same_split(base, to_dict(DataConfig(root="/moved", name="lgg", slices="all")), "a", "b")
    with pytest.raises(SplitMismatchError) as err:
        check_same_split(base, to_dict(DataConfig(split_seed=2, test_fraction=0.2, resolution=32)), "run A", "run B",
                         SEGMENTER_KEYS, hint="Retrain")
    assert str(err.value) == ("data.split_seed is 0 in run A but 2 in run B; data.test_fraction is 0.1 in run A but "
                              "0.2 in run B; data.resolution is 64 in run A but 32 in run B. Retrain")


def test_a_split_that_was_not_recorded_is_refused() -> None:
    with pytest.raises(SplitMismatchError, match="old.safetensors records no data.split_seed"):
        check_same_split({"val_fraction": 0.1, "test_fraction": 0.0}, to_dict(DataConfig()), "old.safetensors", "b")
