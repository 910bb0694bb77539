"""A study's command-line values per dataset: ``--datasets``, ``--set [DATASET:]key=value``, ``[DATASET=]FILE``.

Each raises ``ConfigError`` naming the value that cannot be used, before any work.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import ConfigError


def pick_datasets(preset: str, offered: Sequence[str], wanted: str | None) -> list[str]:
    """The comma-separated ``wanted`` subset of the preset's datasets ``offered`` (None: all of them)."""
    names = list(offered) if wanted is None else [d.strip() for d in wanted.split(",") if d.strip()]
    unknown = [d for d in names if d not in offered]
    if unknown or not names:
        raise ConfigError(f"unknown datasets {unknown} for preset {preset}: choose from {', '.join(offered)}")
    return names


def pick_subset(option: str, offered: Sequence[str], wanted: str | None) -> list[str]:
    """The comma-separated ``wanted`` subset (``OPTION a,b``) of the preset's list ``offered`` (None: all of it)."""
    if wanted is None:
        return list(offered)
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    if not names or set(names) - set(offered):
        raise ConfigError(f"{option} {wanted}: choose among {', '.join(offered)}")
    return names


def scoped_overrides(overrides: Sequence[str], names: list[str]) -> dict[str, list[str]]:
    """``--set [DATASET:]key=value`` -> dataset -> its overrides, in the order given."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for o in overrides:
        scope, sep, rest = o.partition(":")
        if sep and "=" not in scope:
            if scope not in names:
                raise ConfigError(f"--set {o}: dataset {scope!r} is not run (running: {', '.join(names)})")
            out[scope].append(rest)
        else:
            for n in names:
                out[n].append(o)
    return out


def scoped_files(values: Sequence[str], names: list[str], option: str) -> dict[str, Path]:
    """``OPTION [DATASET=]FILE`` (repeatable) -> dataset -> the file, resolved."""
    out = {}
    for v in values:
        scope, sep, path = v.partition("=")
        if not sep:
            if len(names) != 1:
                raise ConfigError(f"{option} {v}: name the dataset, {option} DATASET=FILE")
            scope, path = names[0], v
        if scope not in names or not Path(path).is_file():
            raise ConfigError(f"{option} {v}: expected DATASET=FILE with DATASET in {names} and FILE existing")
        out[scope] = Path(path).resolve()
    return out
