"""The conditions of a synthesis run, gathered from files or a dataset split, each paired with its reference.

Sources (one of): a folder of mask files (one per condition, named by its stem: ``read_mask_file``),
a split of the generator's training dataset (its masks and captions), one case of it (``volume``: every
slice of the case that has a mask, in slice order), or a captions CSV alone (``name,caption``; with masks
it sets their captions). References (reference mode): a folder of images named like the conditions
(``read_reference_file``), or for a dataset split or case the healthy slice of the same subject nearest
the condition's. ``drop_classes`` empties those classes of every mask (class ablation: e.g. ET removed,
NCR and ED kept); captions stay as they are. Tensors load lazily, when a batch needs them.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import DataConfig
from ..data import build_dataset
from .synthesizer import GeneratorMeta, read_mask_file, read_reference_file

IMAGE_SUFFIXES = (".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


class ConditionSetError(ValueError):
    """Conditions or references that cannot be gathered as asked: a missing, unknown or repeated name, or a
    dataset that does not fit the generator (``meddtfm sample`` reports it as a usage error)."""


@dataclass
class SampleCondition:
    """One condition to sample: its name, origin and caption, and lazy loaders of its tensors.

    ``load()``: ``mask`` (K x R x R, or None) and ``has_mask``. ``reference()``: ``image`` (C x R x R) and,
    from a dataset, its ``mask`` and ``caption``. ``nifti``: the source volume per channel and the slice
    index, when the condition is a slice of NIfTI volumes; ``mask_file``: then its segmentation volume.
    """

    name: str
    source: str
    caption: str
    load: Callable[[], dict]
    reference: Callable[[], dict] | None = None
    reference_name: str = ""
    nifti: tuple[tuple[str, ...], int] | None = None
    mask_file: str | None = None


def condition_files(folder: str | Path) -> dict[str, Path]:
    """The mask or image files of ``folder`` by stem; two files with one stem are an error."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise ConditionSetError(f"{folder}: two files named {path.stem} ({found[path.stem].name}, {path.name})")
            found[path.stem] = path
    return found


def _pick(sample: dict, *keys: str) -> dict:
    return {key: sample[key] for key in keys}


def dataset_conditions(meta: GeneratorMeta, data: DataConfig, split: str, healthy_references: bool = False,
                       subject: str | None = None) -> list[SampleCondition]:
    """Every sample of ``split`` (of ``subject`` alone, if given) as a condition; ``healthy_references``: each
    paired with the healthy slice of its subject nearest to it (``data.slices=healthy``)."""
    dataset = build_dataset(data, split)
    if subject is not None:
        cases = sorted({r.subject_id for r in dataset.records})
        dataset.records = [r for r in dataset.records if r.subject_id == subject]
        if not dataset.records:
            raise ConditionSetError(f"{data.root} has no case {subject} with a lesion mask; its cases: "
                                    f"{', '.join(cases[:10])}{', ...' if len(cases) > 10 else ''}")
    got = (dataset.channel_names, dataset.class_names, data.resolution)
    trained = (meta.channel_names, meta.class_names, meta.resolution)
    if got != trained:
        raise ConditionSetError("the dataset gives channels {}, classes {} at {} px; the model was trained on {}, {} "
                                "at {} px".format(*got, *trained))
    healthy, slices_by_subject = None, {}
    if healthy_references:
        healthy = build_dataset(dataclasses.replace(data, slices="healthy"), split)
        for index, record in enumerate(healthy.records):
            if record.label == "healthy":
                slices_by_subject.setdefault(record.subject_id, []).append((record.slice_index, index))
    conditions = []
    for record in dataset.records:
        condition = SampleCondition(record.sample_id, record.sample_id, record.caption,
                                    lambda record=record: _pick(dataset.load(record), "mask", "has_mask"))
        if healthy is not None:
            if record.subject_id not in slices_by_subject:
                raise ConditionSetError(f"no healthy slice of subject {record.subject_id} in the {split} split "
                                        f"(for {record.sample_id})")
            nearest = min(slices_by_subject[record.subject_id], key=lambda pair: abs(pair[0] - record.slice_index))[1]
            condition.reference = lambda index=nearest: _pick(healthy.load(healthy.records[index]), "image", "mask",
                                                              "caption")
            condition.reference_name = healthy.records[nearest].sample_id
        if record.slice_index >= 0 and all(p.endswith((".nii", ".nii.gz")) for p in record.paths):
            condition.nifti, condition.mask_file = (record.paths, record.slice_index), record.mask_path
        conditions.append(condition)
    return conditions


def _read_mask(meta: GeneratorMeta, path: Path) -> dict:
    return {"mask": read_mask_file(path, meta.class_names, meta.resolution), "has_mask": True}


def _read_reference(meta: GeneratorMeta, path: Path) -> dict:
    return {"image": read_reference_file(path, len(meta.channel_names), meta.resolution)}


def _no_mask() -> dict:
    return {"mask": None, "has_mask": False}


def _without(load: Callable[[], dict], classes: Sequence[int]) -> dict:
    """``load()`` with the mask's ``classes`` emptied."""
    loaded = load()
    if loaded["mask"] is not None:
        loaded["mask"] = loaded["mask"].clone()
        loaded["mask"][list(classes)] = 0
    return loaded


def gather_conditions(meta: GeneratorMeta, *, masks_dir: str | None = None, split: str | None = None,
                      data: DataConfig | None = None, volume: str | None = None, captions_file: str | None = None,
                      reference_dir: str | None = None, healthy_references: bool = False,
                      drop_classes: Sequence[int] = (), limit: int = 0) -> list[SampleCondition]:
    """The conditions of ``split`` of ``data``, else of the case ``volume`` of ``data`` (its slices with a
    mask, any split), else of ``masks_dir``, else of ``captions_file`` alone, captioned by ``captions_file``,
    paired with the references of ``reference_dir`` (or, from ``data``, healthy slices), the classes
    ``drop_classes`` (indices) emptied; the first ``limit`` of them (0: all)."""
    captions: dict[str, str] = {}
    if captions_file:
        with open(captions_file, newline="") as fh:
            captions = {row["name"]: row["caption"] for row in csv.DictReader(fh)}
    if split:
        conditions = dataset_conditions(meta, data, split, healthy_references)
    elif volume:
        conditions = dataset_conditions(meta, dataclasses.replace(data, slices="tumour"), "all", healthy_references,
                                        subject=volume)
    elif masks_dir:
        conditions = [SampleCondition(name, str(path), "", functools.partial(_read_mask, meta, path))
                      for name, path in condition_files(masks_dir).items()]
    else:
        conditions = [SampleCondition(name, captions_file, "", _no_mask) for name in captions]
    unknown = sorted(set(captions) - {c.name for c in conditions})
    if unknown:
        raise ConditionSetError(f"{captions_file} names conditions that do not exist: {unknown[:5]}")
    references = condition_files(reference_dir) if reference_dir else None
    for condition in conditions:
        condition.caption = captions.get(condition.name, condition.caption)
        if drop_classes:
            condition.load = functools.partial(_without, condition.load, tuple(drop_classes))
        if references is not None:
            if condition.name not in references:
                raise ConditionSetError(f"{reference_dir}: no reference named {condition.name} (.npy or image)")
            condition.reference = functools.partial(_read_reference, meta, references[condition.name])
            condition.reference_name = str(references[condition.name])
    return conditions[:limit] if limit > 0 else conditions


__all__ = ["ConditionSetError", "SampleCondition", "condition_files", "dataset_conditions", "gather_conditions"]
