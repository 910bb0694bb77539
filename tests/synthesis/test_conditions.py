"""Conditions of a synthesis run gathered from folders and a captions CSV, paired with references; their jobs."""
from pathlib import Path

import numpy as np
import pytest

from meddtfm.config import DataConfig
from meddtfm.flow.sampling import sample_seed
from meddtfm.synthesis import ConditionSetError, GeneratorMeta, SampleCondition, gather_conditions, sample_jobs

CLASSES, S = ("NCR", "ED", "ET"), 16


def _meta(channels: tuple[str, ...] = ("flair", "t1", "t1ce", "t2"), resolution: int = S) -> GeneratorMeta:
    return GeneratorMeta(Path("in-memory"), channels, CLASSES, resolution, None, 8, {}, 0)


def _folders(tmp_path: Path, names: tuple[str, ...] = ("a", "b")) -> tuple[Path, Path]:
    masks, refs = tmp_path / "masks", tmp_path / "refs"
    masks.mkdir(), refs.mkdir()
    for name in names:
        label = np.zeros((S, S), np.uint8)
        label[4:8, 4:8] = 2
        np.save(masks / f"{name}.npy", label)
        np.save(refs / f"{name}.npy", np.zeros((4, S, S), np.float32))
    return masks, refs


def test_masks_get_captions_and_references_by_name(tmp_path):
    masks, refs = _folders(tmp_path)
    (tmp_path / "caps.csv").write_text("name,caption\nb,oedema\n")
    conditions = gather_conditions(_meta(), masks_dir=str(masks), captions_file=str(tmp_path / "caps.csv"),
                                   reference_dir=str(refs))
    assert [(c.name, c.caption) for c in conditions] == [("a", ""), ("b", "oedema")]
    assert conditions[1].reference_name == str(refs / "b.npy") and conditions[0].source == str(masks / "a.npy")
    loaded = conditions[0].load()
    assert loaded["has_mask"] and loaded["mask"].shape == (3, S, S) and loaded["mask"][1].sum() == 16
    assert conditions[0].reference()["image"].shape == (4, S, S)
    assert [c.name for c in gather_conditions(_meta(), masks_dir=str(masks), limit=1)] == ["a"]


def test_captions_alone_are_mask_free_conditions(tmp_path):
    (tmp_path / "caps.csv").write_text("name,caption\nx,melanoma\ny,nevus\n")
    conditions = gather_conditions(_meta(), captions_file=str(tmp_path / "caps.csv"))
    assert [(c.name, c.caption, c.load()["has_mask"]) for c in conditions] == [("x", "melanoma", False),
                                                                                ("y", "nevus", False)]


def test_names_that_do_not_match_are_usage_errors(tmp_path):
    masks, refs = _folders(tmp_path)
    (tmp_path / "caps.csv").write_text("name,caption\nz,unknown\n")
    with pytest.raises(ConditionSetError, match=r"names conditions that do not exist: \['z'\]"):
        gather_conditions(_meta(), masks_dir=str(masks), captions_file=str(tmp_path / "caps.csv"))
    (refs / "a.npy").unlink()
    with pytest.raises(ConditionSetError, match="no reference named a"):
        gather_conditions(_meta(), masks_dir=str(masks), reference_dir=str(refs))
    (masks / "b.png").write_bytes(b"")
    with pytest.raises(ConditionSetError, match="two files named b"):
        gather_conditions(_meta(), masks_dir=str(masks))


def test_a_dataset_split_must_fit_the_generator_and_pairs_healthy_slices():
    data = DataConfig(phantom_count=12, resolution=S, augment=False)
    with pytest.raises(ConditionSetError, match="the model was trained on"):
        gather_conditions(_meta(resolution=32), split="train", data=data)
    conditions = gather_conditions(_meta(), split="train", data=data, healthy_references=True)
    for condition in conditions:
        reference = condition.reference()
        assert reference["image"].shape == (4, S, S) and not reference["mask"].any()
        assert condition.reference_name.split("_s")[0] == condition.name.split("_s")[0]  # the same subject


def test_jobs_are_seeded_by_name_and_draw():
    conditions = [SampleCondition(n, "", "", dict) for n in ("x", "y")]
    jobs = sample_jobs(conditions, 2, seed=7)
    assert [(j.condition.name, j.index, j.seed) for j in jobs] == [(n, k, sample_seed(7, n, k))
                                                                   for n in ("x", "y") for k in range(2)]
    assert sample_jobs(conditions[1:], 2, seed=7)[0].seed == jobs[2].seed, "a seed does not depend on the others"
    assert len({j.seed for j in jobs}) == 4
