"""One training budget for every compared run: images seen, and optionally a wall-clock cap per run.

Images seen are ``train.steps x data.batch_size x train.grad_accumulation``; a study sets each run's
``train.steps`` from ``Budget.images`` (unless the user sets ``train.steps``) and checks, before any
training, that the resolved configs agree.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..config import Config, ConfigError


@dataclass
class Budget:
    """The training budget of every compared run: images seen, batch size, a wall-clock cap per run (0: none)."""

    images: int = 320_000
    batch_size: int = 16
    max_minutes: float = 0.0

    def overrides(self) -> list[str]:
        """The batch size and the cap as ``key.path=value`` overrides."""
        return [f"data.batch_size={self.batch_size}", f"train.max_minutes={self.max_minutes}"]

    def steps(self, cfg: Config) -> int:
        """Steps of ``cfg`` that see at least ``images`` images."""
        return -(-self.images // (cfg.data.batch_size * cfg.train.grad_accumulation))


def images_seen(cfg: Config, steps: int | None = None) -> int:
    """Images a run of ``cfg`` sees in ``steps`` steps (default: ``cfg.train.steps``)."""
    return (cfg.train.steps if steps is None else steps) * cfg.data.batch_size * cfg.train.grad_accumulation


def sets_steps(overrides: Sequence[str]) -> bool:
    """Whether ``overrides`` set ``train.steps`` (then they, not the budget, decide the steps)."""
    return any(o.split("=", 1)[0].strip() == "train.steps" for o in overrides)


def check_equal(name: str, cfgs: Iterable[Config], what: str = "the generators") -> None:
    """``ConfigError`` unless every config sees as many images under the same wall-clock cap."""
    budgets = {(images_seen(c), c.train.max_minutes) for c in cfgs}
    if len(budgets) != 1:
        raise ConfigError(f"{name}: {what}' budgets differ (images seen, max minutes): {sorted(budgets)}")


def budget_statement(steps: int, batch: int, accumulation: int, max_minutes: float,
                     who: str = "all four generators") -> str:
    """The equal budget in words, from the resolved configs of the compared runs (``who``)."""
    cap = f"a wall-clock cap of {max_minutes:g} min per run" if max_minutes > 0 else "no wall-clock cap"
    return (f"Training budget, equal for {who}: {steps * batch * accumulation} images seen = "
            f"{steps} steps x batch {batch} x {accumulation} accumulation, and {cap} (a run that hits the cap "
            "stops early; the rows below say how far each got).")
