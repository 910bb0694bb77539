"""``meddtfm reproduce table1``: the options of the Table 1 study (``meddtfm.experiments.table1``)."""
from __future__ import annotations

import click

from ..config import ConfigError
from ..experiments.runs import Trainers
from ..experiments.table1.preset import preset_names
from .train import run_pretraining, run_training


@click.group("reproduce")
def reproduce() -> None:
    """Reproduce the paper's results end to end."""


@reproduce.command("table1")
@click.option("--preset", required=True, help=f"Budget preset: {' | '.join(preset_names())} "
              "(shipped in meddtfm/experiments/table1/presets/), or a preset YAML file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (reused on a rerun).")
@click.option("--datasets", default=None, help="Comma-separated subset of the preset's datasets.")
@click.option("--set", "overrides", multiple=True, metavar="[DATASET:]KEY.PATH=VALUE",
              help="Override a config value of every run (of one dataset with DATASET:), e.g. "
                   "--set lgg:data.root=/data/kaggle_3m (repeatable).")
@click.option("--seed", type=int, default=None,
              help="Seed of every run (initialisation, data order, sampling); the splits follow data.split_seed.")
@click.option("--teacher", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained U-KAN teacher (skips its stage).")
@click.option("--segmenter", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained evaluation U-Net, pretrain-encoder --model unet (skips its stage).")
@click.option("--inception-weights", type=click.Path(dir_okay=False, exists=True),
              help="pt_inception-2015-12-05-6726825d.pth: adds FID (without it the FID column says n/a).")
def table1(preset: str, out: str, datasets: str | None, overrides: tuple[str, ...], seed: int | None,
           teacher: tuple[str, ...], segmenter: tuple[str, ...], inception_weights: str | None) -> None:
    """Train pix2pixHD, MedGAN, Ours (no DT) and Med-DT-FM with equal budgets, score them, write OUT/table1.md.

    A preset's relative data roots are taken from the current directory (run from the repository root),
    or give them with --set DATASET:data.root=/path.
    """
    from ..experiments.table1.study import Table1

    try:
        study = Table1.prepare(preset, out, datasets, overrides, seed, teacher, segmenter, inception_weights)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    click.echo(study.run(Trainers(pretrain=run_pretraining, generator=run_training)))
