import pytest

from meddtfm.data.splits import assign_splits


def test_deterministic_and_order_free():
    ids = [f"p{i}" for i in range(50)]
    a = assign_splits(ids, 0.2, 0.1, seed=1)
    b = assign_splits(list(reversed(ids)) * 3, 0.2, 0.1, seed=1)
    assert a == b
    assert a != assign_splits(ids, 0.2, 0.1, seed=2)


def test_split_sizes_follow_the_fractions():
    split = assign_splits([f"p{i}" for i in range(4000)], 0.1, 0.2, seed=0)
    counts = {k: sum(v == k for v in split.values()) / 4000 for k in ("train", "val", "test")}
    assert counts == pytest.approx({"train": 0.7, "val": 0.1, "test": 0.2}, abs=0.03)


def test_removing_a_subject_leaves_every_other_split_unchanged():
    ids = [f"BraTS2021_{i:05d}" for i in range(300)]
    full = assign_splits(ids, 0.1, 0.1, seed=0)
    for dropped in ids[::37]:
        fewer = assign_splits([s for s in ids if s != dropped], 0.1, 0.1, seed=0)
        assert fewer == {s: v for s, v in full.items() if s != dropped}


def test_small_sets_keep_train_and_val():
    split = assign_splits(["a", "b"], 0.1, 0.0, seed=0)
    assert sorted(split.values()) == ["train", "val"]
    assert assign_splits(["a"], 0.5, 0.0, seed=0) == {"a": "train"}
    assert sorted(assign_splits(["a", "b", "c"], 0.1, 0.1, seed=0).values()) == ["test", "train", "val"]


def test_the_run_seed_does_not_move_subjects_between_splits():
    from meddtfm.config import DataConfig
    from meddtfm.data import build_dataset

    cfg = DataConfig(name="phantoms", phantom_count=40, resolution=32, test_fraction=0.2)

    def test_ids(c: DataConfig, seed: int) -> set[str]:
        return {r.subject_id for r in build_dataset(c, "test", seed).records}

    assert test_ids(cfg, 0) == test_ids(cfg, 1)  # e.g. the evaluation U-Net trained with --seed 1
    assert test_ids(cfg, 0) != test_ids(DataConfig(**{**cfg.__dict__, "split_seed": 1}), 0)
