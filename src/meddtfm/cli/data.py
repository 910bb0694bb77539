"""``meddtfm data``: look at a dataset before training on it."""
from __future__ import annotations

from pathlib import Path

import click
import yaml

from ..config import Config
from ..data.errors import BadSampleError
from .common import run_options


@click.group()
def data() -> None:
    """Inspect datasets (BraTS 2021, ISIC 2019, LGG, image folders, built-in phantoms)."""


@data.command()
@run_options(default_out="runs/inspect")
@click.option("--grid", "grid_size", type=int, default=16, show_default=True, help="Samples drawn in grid.png.")
@click.option("--limit", type=int, default=0, show_default=True,
              help="Read at most this many samples per split for the statistics (0: all).")
def inspect(cfg: Config, out: Path, grid_size: int, limit: int) -> None:
    """Count samples per split, report channel and label statistics, write OUT/grid.png and OUT/summary.yaml.

    BraTS also gets `volumes`: per sequence its file type and native intensity range (brain voxels, with the
    per-case normalisation window), and the slices holding each class (NCR, ED, ET), for the set and per split.
    """
    from ..data.inspect import inspect_dataset

    try:
        summary = inspect_dataset(cfg, out, grid_size=grid_size, limit=limit)
    except (BadSampleError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    text = yaml.safe_dump(summary, sort_keys=False)
    (out / "summary.yaml").write_text(text)
    click.echo(text)
