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
