"""Entry point: ``meddtfm [--verbose] COMMAND ...``."""
from __future__ import annotations

import click

from .augment import augment
from .common import setup_logging
from .data import data
from .distill import distill_steps
from .evaluate import evaluate
from .reproduce import reproduce
from .sample import sample
from .serve import serve
from .train import pretrain_encoder, train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="meddtfm")
def cli(verbose: bool) -> None:
    """Med-DT-FM: conditional medical image synthesis by flow matching with multi-scale distillation."""
    setup_logging(verbose)


cli.add_command(data)
cli.add_command(pretrain_encoder)
cli.add_command(train_command)
cli.add_command(distill_steps)
cli.add_command(sample)
cli.add_command(evaluate)
cli.add_command(augment)
cli.add_command(reproduce)
cli.add_command(serve)
