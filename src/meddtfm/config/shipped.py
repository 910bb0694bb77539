"""The configs shipped with the package (``meddtfm/configs/NAME.yaml``), found by name.

They are package data, so an installed ``meddtfm`` has them without a checkout; the checkout's
``configs/NAME.yaml`` are links to the same files. ``--config lgg`` and ``--config configs/lgg.yaml``
read one file.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "configs"


def config_names() -> list[str]:
    """The names of the shipped configs, sorted."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def find_config(path: str | Path) -> Path:
    """``path`` when it is a file, else the shipped config named ``path`` (a bare name, no suffix)."""
    given = Path(path)
    if given.is_file():
        return given
    shipped = SHIPPED / f"{given.name}.yaml"
    if str(path) == given.name and not given.suffix and shipped.is_file():
        return shipped
    raise ConfigError(f"config file {path} does not exist (shipped configs, by name: {', '.join(config_names())})")
