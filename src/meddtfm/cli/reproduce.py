"""``meddtfm reproduce table1 | ablation | utility | fewstep``: the options of the studies (``meddtfm.experiments``)."""
from __future__ import annotations

import click

from ..config import ConfigError
from ..experiments.ablation.preset import preset_names as ablation_presets
from ..experiments.fewstep.preset import STUDY as FEWSTEP
from ..experiments.presets import preset_names as study_presets
from ..experiments.runs import Trainers
from ..experiments.table1.preset import preset_names
from ..experiments.utility.preset import STUDY as UTILITY
from .distill import run_planned_distillation
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
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at once, each a child process with cores/N threads and its log in RUN/train.log; "
                   "1 trains in this process.")
def table1(preset: str, out: str, datasets: str | None, overrides: tuple[str, ...], seed: int | None,
           teacher: tuple[str, ...], segmenter: tuple[str, ...], inception_weights: str | None, jobs: int) -> None:
    """Train pix2pixHD, MedGAN, Ours (no DT) and Med-DT-FM with equal budgets, score them, write OUT/table1.md.

    A preset's relative data roots are taken from the current directory (run from the repository root),
    or give them with --set DATASET:data.root=/path.
    """
    from ..experiments.parallel import TrainingFailed
    from ..experiments.table1.study import Table1

    try:
        study = Table1.prepare(preset, out, datasets, overrides, seed, teacher, segmenter, inception_weights, jobs)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    try:
        click.echo(study.run(Trainers(pretrain=run_pretraining, generator=run_training)))
    except TrainingFailed as err:
        raise click.ClickException(str(err)) from err


@reproduce.command("ablation")
@click.option("--preset", required=True, help=f"Preset: {' | '.join(ablation_presets())} (shipped in "
              "meddtfm/experiments/ablation/presets/; the header of each says how long it runs), or a YAML file.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder; finished runs in it are reused, and its tables show every finished run in it.")
@click.option("--datasets", default=None, help="Comma-separated subset of the preset's datasets.")
@click.option("--only", default=None, metavar="NAME,NAME",
              help="Train only these variants (several invocations may cover the list; the tables show all).")
@click.option("--seeds", default=None, metavar="K,K",
              help="Train only these of the preset's training seeds, e.g. --seeds 0 to screen many variants on one "
                   "seed before confirming the best on all (the tables show every finished run with its seeds).")
@click.option("--variants", "variants_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A YAML list of variants that replaces the preset's: - {name: x, description: ..., "
                   "overrides: [flow.adv_weight=0]}.")
@click.option("--set", "overrides", multiple=True, metavar="[DATASET:]KEY.PATH=VALUE",
              help="Override a config value of every run (of one dataset with DATASET:), e.g. "
                   "--set lgg:data.root=/data/kaggle_3m (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at once, each a child process with cores/N threads and its log in RUN/train.log; "
                   "1 trains in this process.")
@click.option("--teacher", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained U-KAN teacher (skips its stage).")
@click.option("--segmenter", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained evaluation U-Net, pretrain-encoder --model unet (skips its stage).")
@click.option("--inception-weights", type=click.Path(dir_okay=False, exists=True),
              help="pt_inception-2015-12-05-6726825d.pth: adds an FID column.")
def ablation(preset: str, out: str, datasets: str | None, only: str | None, seeds: str | None,
             variants_file: str | None, overrides: tuple[str, ...], jobs: int, teacher: tuple[str, ...],
             segmenter: tuple[str, ...], inception_weights: str | None) -> None:
    """Train Med-DT-FM variants at equal images seen over several training seeds, score them on the validation
    split, write OUT/ablation.md, ablation.csv, convergence.png and bars.png.

    The study chooses the default recipe, so it never reads the test split. A preset's relative data roots
    are taken from the current directory (run from the repository root), or give them with
    --set DATASET:data.root=/path.
    """
    from ..experiments.ablation.study import Ablation
    from ..experiments.parallel import TrainingFailed

    try:
        study = Ablation.prepare(preset, out, datasets, only, variants_file, overrides, teacher, segmenter,
                                 inception_weights, jobs, seeds)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    try:
        report = study.run(Trainers(pretrain=run_pretraining, generator=run_training))
    except TrainingFailed as err:
        raise click.ClickException(str(err)) from err
    click.echo(report.markdown)
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} run(s) failed and are not in the tables: " + "; ".join(
            f"{f.what} (log {f.log})" for f in report.failed))


@reproduce.command("utility")
@click.option("--preset", required=True, help=f"Preset: {' | '.join(study_presets(UTILITY))} (shipped in "
              "meddtfm/experiments/utility/presets/; the header of each says how long it runs), or a YAML file.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder; finished runs and synthetic sets in it are reused, interrupted ones completed.")
@click.option("--datasets", default=None, help="Comma-separated subset of the preset's datasets.")
@click.option("--generators", default=None, metavar="KEY,KEY",
              help="Comma-separated subset of the preset's generators (meddtfm, nodt, pix2pixhd, medgan).")
@click.option("--set", "overrides", multiple=True, metavar="[DATASET:]KEY.PATH=VALUE",
              help="Override a config value of every run (of one dataset with DATASET:) (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at once, each a child process with cores/N threads and its log in RUN/train.log.")
def utility(preset: str, out: str, datasets: str | None, generators: str | None, overrides: tuple[str, ...],
            jobs: int) -> None:
    """Train the same U-Net on real, real + synthetic (1x, 2x), synthetic-only and low-data (with and without
    synthetic) training sets, several seeds each; score each on the real test split; write OUT/utility.md,
    utility.csv and utility.png.
    """
    from ..experiments.parallel import TrainingFailed
    from ..experiments.utility import Utility

    try:
        study = Utility.prepare(preset, out, datasets, generators, overrides, jobs)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    try:
        click.echo(study.run(Trainers(pretrain=run_pretraining, generator=run_training)))
    except TrainingFailed as err:
        raise click.ClickException(str(err)) from err


@reproduce.command("fewstep")
@click.option("--preset", required=True, help=f"Preset: {' | '.join(study_presets(FEWSTEP))} (shipped in "
              "meddtfm/experiments/fewstep/presets/; the header of each says how long it runs), or a YAML file.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder; finished runs in it are reused, interrupted ones resumed.")
@click.option("--datasets", default=None, help="Comma-separated subset of the preset's datasets.")
@click.option("--methods", default=None, metavar="NAME,NAME",
              help="Comma-separated subset of the preset's few-step methods (adversarial, meanflow, reflow).")
@click.option("--set", "overrides", multiple=True, metavar="[DATASET:]KEY.PATH=VALUE",
              help="Override a config value of every run (of one dataset with DATASET:) (repeatable).")
@click.option("--seed", type=int, default=None,
              help="Seed of every run (initialisation, data order); the splits follow data.split_seed.")
@click.option("--teacher", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained U-KAN teacher (skips its stage).")
@click.option("--segmenter", multiple=True, metavar="[DATASET=]FILE",
              help="A pretrained evaluation U-Net, pretrain-encoder --model unet (skips its stage).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at once, each a child process with cores/N threads and its log in RUN/train.log.")
def fewstep(preset: str, out: str, datasets: str | None, methods: str | None, overrides: tuple[str, ...],
            seed: int | None, teacher: tuple[str, ...], segmenter: tuple[str, ...], jobs: int) -> None:
    """Train a flow and a GAN at one budget, distil the flow into 1- to few-step students (distill-steps), score
    the flow at each NFE, every student at each of its step counts and the GAN's pass on the same samples; write
    OUT/fewstep.md and fewstep.csv (FRD, SSIM, Dice, images per second, training images).
    """
    from ..experiments.fewstep import FewStep
    from ..experiments.parallel import TrainingFailed

    try:
        study = FewStep.prepare(preset, out, datasets, methods, overrides, seed, teacher, segmenter, jobs)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    try:
        click.echo(study.run(Trainers(pretrain=run_pretraining, generator=run_training,
                                      distill=run_planned_distillation)))
    except TrainingFailed as err:
        raise click.ClickException(str(err)) from err
