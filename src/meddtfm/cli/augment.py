"""``meddtfm augment``: a synthetic segmentation training set drawn by any generator for varied real masks."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..config import Config
from ..flow.solver import SOLVERS
from .common import run_options

VARY_HELP = ("Mask variation: none, or comma-separated flip, rotate=DEG, scale=F, elastic=PX, shift (move the lesion "
             "within the anatomy), e.g. flip,rotate=15,scale=0.1,shift. Each image's variation follows its seed.")


@click.command("augment")
@run_options(default_out="runs/augment")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Any `meddtfm train` generator: Med-DT-FM (its final.safetensors), pix2pixhd or medgan.")
@click.option("--count", required=True, type=click.IntRange(min=1), help="Images to write.")
@click.option("--mode", type=click.Choice(["noise", "reference"]), default="noise", show_default=True,
              help="noise: Eq. 7 from noise; reference: the lesion inserted into a healthy slice of the same split "
                   "(of the mask's own subject where it has one; Med-DT-FM only, MRI slices).")
@click.option("--masks", "masks_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of condition masks (default: the masks of --dataset).")
@click.option("--dataset", "split", type=click.Choice(["train", "val", "test", "all"]), default="train",
              show_default=True, help="The split of the generator's training data whose masks (and captions) are "
                                      "used; give the data with --set data.root=/path if it moved.")
@click.option("--vary", default="none", show_default=True, help=VARY_HELP)
@click.option("--min-dice", type=click.FloatRange(0, 1), default=None,
              help="Quality filter (off by default): drop images on which --segmenter's Dice against their own mask "
                   "is below this; candidates are drawn until --count pass (at most 4 x --count).")
@click.option("--segmenter", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The independent evaluation U-Net (pretrain-encoder --model unet) for --min-dice.")
@click.option("--teacher", type=click.Path(dir_okay=False), default=None,
              help="The U-KAN teacher, if it moved since training (reference mode).")
@click.option("--solver", type=click.Choice(SOLVERS.names()), default="heun", show_default=True)
@click.option("--nfe", type=int, default=8, show_default=True, help="Velocity evaluations (flows only).")
@click.option("--cfg", "cfg_mask", type=float, default=2.0, show_default=True, help="Guidance scale (flows only).")
@click.option("--t0", type=float, default=0.0, show_default=True, help="Reference mode: inversion time.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images drawn at once; part of the request (a resumed folder keeps it).")
def augment(cfg: Config, out: Path, checkpoint: str, count: int, mode: str, masks_dir: str | None, split: str,
            vary: str, min_dice: float | None, segmenter: str | None, teacher: str | None, solver: str, nfe: int,
            cfg_mask: float, t0: float, batch_size: int) -> None:
    """Write COUNT synthetic images with their masks to OUT in the `folder` layout (images/, masks/, captions.csv,
    manifest.csv), ready to train a segmenter on (--set data.name=folder --set data.root=OUT): PNG for grey and
    RGB models, NIfTI for four-sequence BraTS (masks with BraTS's labels 1, 2, 4). A rerun with the same options
    completes an interrupted folder without redrawing finished images."""
    from ..augmentation import (
        AugmentError,
        AugmentFolder,
        AugmentFolderError,
        AugmentSpec,
        HealthyReferences,
        MaskVariation,
        augment,
        dataset_sources,
        folder_sources,
    )
    from ..checkpoint import CheckpointError
    from ..evaluation.consistency import SegmenterError, load_eval_segmenter
    from ..evaluation.generation import load_generate
    from ..synthesis import ConditionSetError, training_data_config
    from ..training.distributed import pick_device

    if (min_dice is None) != (segmenter is None):
        raise click.UsageError("the quality filter needs both --min-dice and --segmenter")
    if masks_dir and mode == "reference":
        raise click.UsageError("reference mode takes its masks and healthy slices from --dataset, not --masks")
    try:
        variation = MaskVariation.parse(vary)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--vary") from err
    device = pick_device(cfg.train.device)
    params = click.get_current_context().params
    try:
        generate, info = load_generate(checkpoint, mode, device, nfe=nfe, solver=solver, cfg_mask=cfg_mask, t0=t0,
                                       teacher=teacher)
        channels, classes = tuple(info["channel_names"]), tuple(info["class_names"])
        data = training_data_config(info["data"], params["config_path"], params["overrides"], checkpoint)
        trained = (channels, classes, int(info["data"]["resolution"]))
        sources = (folder_sources(masks_dir, classes, trained[2]) if masks_dir
                   else dataset_sources(data, split, trained))
        references = HealthyReferences(data, split, trained) if mode == "reference" else None
        seg = None
        if segmenter is not None:
            seg = load_eval_segmenter(segmenter, len(channels), classes, channels,
                                      data=dataclasses.asdict(data)).to(device)
        spec = AugmentSpec(count, mode, cfg.seed, batch_size, variation, min_dice)
        settings = {"model": info["model"], "mode": mode, "nfe": "" if info.get("deterministic") else nfe,
                    "solver": "" if info.get("deterministic") else solver,
                    "cfg": "" if info.get("deterministic") else cfg_mask, "checkpoint": str(Path(checkpoint).resolve())}
        request = {**settings, "count": count, "seed": cfg.seed, "batch_size": batch_size, "variation": str(variation),
                   "masks": str(Path(masks_dir).resolve()) if masks_dir else f"dataset:{split}", "min_dice": min_dice,
                   "t0": t0 if mode == "reference" else None}
        folder = AugmentFolder(out, request, classes, channels)
        summary = augment(generate, settings, sources, spec, folder, references, seg)
    except ConditionSetError as err:
        raise click.UsageError(f"{checkpoint}: {err}") from err
    except AugmentFolderError as err:
        raise click.UsageError(str(err)) from err
    except (AugmentError, CheckpointError, SegmenterError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    rate = f", {summary.images_per_minute:.0f} images/min" if summary.drawn else ""
    click.echo(f"wrote {summary.written} images to {out} ({summary.drawn} drawn now{rate}; "
               f"{summary.dropped} dropped by the quality filter)")
