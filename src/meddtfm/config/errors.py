"""``ConfigError`` and the choice check that raises it, shared by every config section."""
from __future__ import annotations

from typing import Sequence


class ConfigError(ValueError):
    """A configuration file or override that cannot be used."""


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ``ConfigError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
