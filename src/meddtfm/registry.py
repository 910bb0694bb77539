"""Named registries of interchangeable parts: datasets, ODE solvers, metrics, generators.

Each kind lives in one ``Registry``, kept by the module that owns the kind (``meddtfm.config.datasets.DATASETS``,
``meddtfm.flow.solver.SOLVERS``, ...), so a new part is added in one place and every command offers
it: ``names()`` for choices, ``describe()`` for help. An entry is a name, a one-line description and
an object (a class, a factory or a small record); ``add_lazy`` stores an import path instead, for a
part whose dependencies should load only when it is used.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # names go into comma-separated options and config values


class UnknownNameError(ValueError):
    """A name that a registry does not hold; the message lists the names it does."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered part: ``name``, a one-line ``description``, and ``load`` giving the object."""

    name: str
    description: str
    load: Callable[[], T]

    @property
    def value(self) -> T:
        return self.load()


def _importer(target: str) -> Callable[[], object]:
    module, _, attribute = target.partition(":")
    if not module or not attribute:
        raise ValueError(f"import path {target!r} must read 'package.module:attribute'")
    return lambda: getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """Objects of one ``kind`` by name, in the order they were added."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def _put(self, name: str, description: str, load: Callable[[], T]) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{self.kind} name {name!r}: use letters, digits, '_', '.' or '-'")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, description, load)

    def add(self, name: str, description: str, value: T) -> T:
        """Register ``value`` under ``name``; returns ``value``."""
        self._put(name, description, lambda: value)
        return value

    def add_lazy(self, name: str, description: str, target: str) -> None:
        """Register the object at ``target`` (``"package.module:attribute"``), imported when first looked up."""
        self._put(name, description, _importer(target))

    def register(self, name: str, description: str) -> Callable[[T], T]:
        """``add`` as a decorator of the class or function to register."""
        return lambda value: self.add(name, description, value)

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name``, or ``UnknownNameError`` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}") from None

    def __getitem__(self, name: str) -> T:
        return self.entry(name).value

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def names(self) -> tuple[str, ...]:
        """Every name, in registration order (click choices, defaults)."""
        return tuple(self._entries)

    def describe(self, separator: str = "; ") -> str:
        """``name: description`` of every entry, joined by ``separator`` (help texts)."""
        return separator.join(f"{e.name}: {e.description}" for e in self._entries.values())


__all__ = ["Entry", "Registry", "UnknownNameError"]
