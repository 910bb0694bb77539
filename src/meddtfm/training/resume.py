"""Resume a run only with the settings it was trained with.

A training state holds the resolved config of the run that wrote it (``state["config"]``). Resuming
under other settings would silently splice two runs: the restored optimiser overwrites a new
``train.lr``, and a network that a switch adds (distillation's projectors) has no saved weights.
``check_resume`` lets the keys of ``MAY_CHANGE_ON_RESUME`` differ and names every other difference.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ..config import Config, to_dict

# Settings a resumed run may change: none alters the objective, the networks, the optimiser or the data.
MAY_CHANGE_ON_RESUME: tuple[str, ...] = (
    "train.steps", "train.max_minutes",  # how long to train: training on is what resuming is for
    "few_step.iterations",  # distill-steps' train.steps
    "train.log_every", "train.val_every", "train.sample_every",  # bookkeeping: when to log, validate, draw
    "train.checkpoint_every", "train.keep_checkpoints",  # and when to save, how many states to keep
    "flow.sample_steps",  # ODE steps of the snapshot grids only
    "train.device",  # the same maths elsewhere; CUDA draws other noise than the CPU and, with train.amp, rounds to bf16
    "data.root",  # the same dataset, moved
    "data.num_workers", "data.volume_cache",  # loader speed: augmentation is seeded per sample, not per worker
)


class _Absent:
    """Stands for a key one of two configs does not have (e.g. a setting added to the code since)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


class ResumeConfigError(ValueError):
    """A training state was written under settings other than the run that tries to resume it.

    ``saved`` is the state's config, so a caller that already wrote the new one beside the checkpoints
    (the CLI's ``OUT/config.yaml``) can put it back.
    """

    def __init__(self, message: str, saved: Mapping) -> None:
        super().__init__(message)
        self.saved = saved


def flatten(d: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested dict -> ``{"section.key": value}``; lists are values, not sections."""
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
    return out


def unread_sections(cfg: Mapping) -> tuple[str, ...]:
    """Config sections a run of ``cfg`` never reads: ``few_step`` configures ``distill-steps`` alone, the
    only run that sets ``few_step.checkpoint`` (the base flow it fine-tunes)."""
    few_step = cfg.get("few_step")
    return ("few_step",) if isinstance(few_step, Mapping) and few_step.get("checkpoint") is None else ()


def config_changes(old: Mapping, new: Mapping, may_change: Iterable[str] = (),
                   defaults: Mapping | None = None) -> list[tuple[str, object, object]]:
    """``(key, old value, new value)`` for each dotted key whose value differs between the nested
    configs ``old`` and ``new``, sorted by key; keys in ``may_change`` are skipped, a missing key is ``ABSENT``.

    With ``defaults`` (a whole default config), a key that ``old`` lacks and ``new`` holds at its default is
    no change: a setting added to the code since ``old`` was saved, whose default is the behaviour of before
    (every new switch of ``Config`` defaults to what the code did without it).

    Sections neither run reads are skipped (``unread_sections``): a new default of ``few_step.method``
    changes no ``meddtfm train`` run.
    """
    a, b, allowed = flatten(old), flatten(new), set(may_change)
    skip = tuple(f"{s}." for s in set(unread_sections(old)) & set(unread_sections(new)))
    a, b = ({k: v for k, v in x.items() if not k.startswith(skip)} for x in (a, b))
    d = flatten(defaults) if defaults is not None else {}
    return [(k, a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(a.keys() | b.keys())
            if k not in allowed and a.get(k, ABSENT) != b.get(k, ABSENT)
            and not (k not in a and k in d and d[k] == b.get(k, ABSENT))]


def check_resume(saved: Mapping, current: Mapping, state: Path) -> None:
    """Raise ``ResumeConfigError`` if ``current`` differs from the config ``saved`` in training state
    ``state`` anywhere outside ``MAY_CHANGE_ON_RESUME``."""
    changes = config_changes(saved, current, MAY_CHANGE_ON_RESUME, to_dict(Config()))
    if changes:
        listed = "\n".join(f"  {k}: {old!r} -> {new!r}" for k, old, new in changes)
        raise ResumeConfigError(
            f"cannot resume from {state}: it was trained with other settings than this run's\n{listed}\n"
            f"Only {', '.join(MAY_CHANGE_ON_RESUME)} may change when resuming. Start over with --fresh, "
            f"or train into another --out.", saved)
