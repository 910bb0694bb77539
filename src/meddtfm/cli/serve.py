"""``meddtfm serve``: the interactive web demo (Gradio) of a trained generator, on ``--host:--port``."""
from __future__ import annotations

import importlib.util
import os

import click

INSTALL_HINT = "pip install 'meddtfm[demo]'   (or: pip install 'gradio>=6.0')"


@click.command("serve")
@click.option("--checkpoint", required=True, type=click.Path(exists=True),
              help="Weights of `meddtfm train` (any --model), its run folder, or a saved pipeline folder.")
@click.option("--teacher", type=click.Path(dir_okay=False), default=None,
              help="The U-KAN teacher for reference mode, if it moved since training.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda:0, ...")
@click.option("--references", "reference_count", type=int, default=8, show_default=True,
              help="Healthy test-split slices offered as references, when the training data is on this machine.")
def serve(checkpoint: str, teacher: str | None, host: str, port: int, device: str, reference_count: int) -> None:
    """Start the web demo: draw or upload a mask, pick a reference, press Generate."""
    if importlib.util.find_spec("gradio") is None:
        raise click.ClickException(f"meddtfm serve needs Gradio, which is not installed: {INSTALL_HINT}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ..app import healthy_slices
    from ..app.demo import build_demo, launch
    from ..pipeline import MedDTFMPipeline
    from ..training.distributed import pick_device

    try:
        pipe = MedDTFMPipeline.from_pretrained(checkpoint, teacher, pick_device(device))
    except (RuntimeError, ValueError) as err:  # CheckpointError, no CUDA
        raise click.ClickException(str(err)) from err
    click.echo(f"serving {pipe} on http://{host}:{port}")
    launch(build_demo(pipe, healthy_slices(pipe, reference_count)), host, port)
