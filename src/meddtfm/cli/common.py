"""Options every subcommand shares: ``--config``, repeatable ``--set key.path=value``, ``--out``, ``--seed``,
and for the commands that train a generator ``--recipe NAME`` (``config.RECIPES``)."""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable

import click

from ..config import RECIPES, Config, ConfigError, load_config, save_config
from ..data.errors import BadSampleError
from ..training.resume import ResumeConfigError


def run_options(default_out: str, recipe: bool = False) -> Callable:
    """Decorate a click command with the shared options; it receives ``cfg: Config`` and ``out: Path``.

    ``recipe``: also offer ``--recipe NAME``, a training recipe applied between the config file and ``--set``.
    """

    def decorate(fn: Callable) -> Callable:
        command = _shared_options(fn, default_out)
        if not recipe:
            return command
        return click.option("--recipe", "recipe", type=click.Choice(RECIPES.names()), default=None,
                            help="Training recipe, applied between --config and --set: "
                                 f"{RECIPES.describe()}.")(command)

    return decorate


def _shared_options(fn: Callable, default_out: str) -> Callable:
    """``fn`` with ``--config``, ``--set``, ``--seed`` and ``--out``, called with the resolved ``cfg`` and ``out``."""
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="YAML config file (see configs/).")
    @click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                  help="Override one config value, e.g. --set data.root=/data/isic (repeatable).")
    @click.option("--seed", type=int, default=None, help="Seed for data order, augmentation and model init.")
    @click.option("--out", type=click.Path(file_okay=False), default=default_out, show_default=True,
                  help="Output folder; the resolved config is written there as config.yaml.")
    @functools.wraps(fn)
    def wrapper(config_path: str | None, overrides: tuple[str, ...], seed: int | None, out: str,
                recipe: str | None = None, **kwargs):
        try:
            cfg = load_config(config_path, overrides, seed, recipe)
        except ConfigError as err:
            raise click.UsageError(str(err)) from err
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        try:
            return fn(cfg=cfg, out=out_dir, **kwargs)
        except (BadSampleError, ResumeConfigError) as err:  # BadSampleError: in the main process or a loader worker
            raise click.ClickException(str(err)) from err

    return wrapper


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) for model init and training noise."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


__all__ = ["Config", "run_options", "setup_logging"]
