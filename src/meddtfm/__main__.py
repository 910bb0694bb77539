"""``python -m meddtfm`` (and ``torchrun -m meddtfm``) runs the CLI."""
from meddtfm.cli.main import cli

cli()
