from meddtfm.data.splits import assign_splits


def test_deterministic_and_order_free():
    ids = [f"p{i}" for i in range(50)]
    a = assign_splits(ids, 0.2, 0.1, seed=1)
    b = assign_splits(list(reversed(ids)) * 3, 0.2, 0.1, seed=1)
    assert a == b
    assert sum(v == "val" for v in a.values()) == 10
    assert sum(v == "test" for v in a.values()) == 5
    assert a != assign_splits(ids, 0.2, 0.1, seed=2)


def test_small_sets_keep_train_and_val():
    split = assign_splits(["a", "b"], 0.1, 0.0, seed=0)
    assert sorted(split.values()) == ["train", "val"]
    assert assign_splits(["a"], 0.5, 0.0, seed=0) == {"a": "train"}


def test_the_run_seed_does_not_move_subjects_between_splits():
    from meddtfm.config import DataConfig
    from meddtfm.data import build_dataset

    cfg = DataConfig(name="phantoms", phantom_count=40, resolution=32, test_fraction=0.2)

    def test_ids(c: DataConfig, seed: int) -> set[str]:
        return {r.subject_id for r in build_dataset(c, "test", seed).records}

    assert test_ids(cfg, 0) == test_ids(cfg, 1)  # e.g. the evaluation U-Net trained with --seed 1
    assert test_ids(cfg, 0) != test_ids(DataConfig(**{**cfg.__dict__, "split_seed": 1}), 0)
