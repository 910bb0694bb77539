"""``meddtfm sample``: synthesise images with a trained generator (paper §2.3), noise-based or reference-guided.

Conditions: ``--masks DIR`` (one file per condition, named by its stem: ``.npy`` one-hot ``K x H x W`` or
``H x W`` label map, or a PNG label map, value i = i-th class, BraTS's 4 = ET, 0/255 for one class;
resized to the model's resolution as the loaders do), ``--dataset SPLIT`` (the training data config,
changed by ``--config`` / ``--set``, except for the split keys ``data.split_seed``, ``val_fraction`` and
``test_fraction``: the split is the training run's, and a change is refused), or
``--captions FILE`` alone (csv ``name,caption``; with masks it sets their captions), or ``--volume CASE``
(every slice of one case of the training data config that has a lesion mask). References:
``--reference DIR`` (``NAME.npy`` ``C x H x W`` in [-1, 1], or an image for 1 or 3 channels) or
``--dataset-reference healthy``: the healthy slice of the same subject nearest the condition's.
``--drop-class NAME`` empties a class of every mask (class ablation); ``--cfg-class NAME=S`` guides one
class with its own scale (``flow.sampling``: ``S - 1`` times its contribution is added; 0 removes it).

OUT gets ``images/NAME[_CHANNEL].png``, ``grid.png`` (mask over sample | sample [| reference], first 32, near square),
``nifti/NAME_<sequence>.nii.gz`` + ``NAME_seg.nii.gz`` for NIfTI datasets (``data.nifti_out``), and
``manifest.csv``; in reference mode its ``ssim_outside_lesion_unblended`` is the SSIM of each sample to its
reference outside the new lesion dilated by ``OUTSIDE_MARGIN`` px (how much anatomy the edit kept; the
command prints the mean), measured on the output without blending: with ``--blend-dilation`` the saved
image copies the reference there, so it is scored on the same start integrated once more unblended
(``nfe_used`` does not count that pass). Sample k of condition NAME uses ``sample_seed(--seed, NAME, k)``: the
same pixels whatever the batch size or the other conditions. With ``--volume CASE``, OUT also gets
``volume/CASE_<sequence>.nii.gz`` and ``CASE_seg.nii.gz``: the case's whole stack with its original affine,
header and type, each slice with a mask replaced by its sample (slices are synthesised independently, with
no 3D consistency between them), every other slice unchanged (``data.nifti_out.write_volume``).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click
import torch
from tqdm import tqdm

from ..config import Config, save_config
from ..flow.solver import SOLVERS
from .common import run_options

if TYPE_CHECKING:
    from ..synthesis import BatchResult, ReferenceEdit, SampleJob, Synthesizer

GRID_ROWS = 32
OUTSIDE_MARGIN = 4  # px: "outside the lesion" is outside the new mask dilated by this much


def _check_sources(opts: dict) -> None:
    """One source of conditions; references exactly in reference mode."""
    sources = [o for o in ("masks_dir", "split", "volume") if opts[o]]
    if len(sources) > 1 or not (sources or opts["captions_file"]) or (opts["volume"] and opts["captions_file"]):
        raise click.UsageError("give the conditions with one of --masks DIR, --dataset SPLIT, --volume CASE or "
                               "--captions FILE")
    reference = opts["mode"] == "reference"
    if len([o for o in ("reference_dir", "dataset_reference") if opts[o]]) != reference:
        raise click.UsageError("--mode reference needs one of --reference DIR, --dataset-reference; noise mode neither")
    if opts["dataset_reference"] and not (opts["split"] or opts["volume"]):
        raise click.UsageError("--dataset-reference needs --dataset SPLIT or --volume CASE")
    if opts["volume"] and opts["num_per_condition"] != 1:
        raise click.UsageError("--volume writes one stack: use --num-per-condition 1")


def _class_indices(names: tuple[str, ...], classes: tuple[str, ...], option: str) -> list[int]:
    """Indices of class ``names`` among the model's ``classes``; an unknown name is a usage error."""
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise click.UsageError(f"{option} {unknown[0]}: this model's classes are {', '.join(classes)}")
    return [classes.index(n) for n in names]


def _class_scales(values: tuple[str, ...], classes: tuple[str, ...]) -> tuple[tuple[int, float], ...]:
    """``NAME=S`` pairs of ``--cfg-class`` as (class index, scale)."""
    pairs = []
    for value in values:
        name, _, scale = value.partition("=")
        try:
            pairs.append((_class_indices((name,), classes, "--cfg-class")[0], float(scale)))
        except ValueError as err:
            raise click.UsageError(f"--cfg-class {value}: expected NAME=SCALE, e.g. ET=3") from err
    return tuple(pairs)


def _ssim_outside(batch: BatchResult) -> list[float | str]:
    """Reference mode: per sample, SSIM of the unblended output to its reference outside the new lesion
    ("" without a mask or reference). Blending copies the reference there, so the blended output would score
    about 1 whatever the model does."""
    from ..evaluation.metrics import masked_ssim
    from ..flow.sampling import lesion_region

    if batch.unblended is None:
        return [""] * len(batch.loaded)
    scores: list[float | str] = []
    for image, loaded, reference in zip(batch.unblended, batch.loaded, batch.references):
        if not loaded["has_mask"] or loaded["mask"] is None:
            scores.append("")
            continue
        keep = ~lesion_region(loaded["mask"][None].float(), OUTSIDE_MARGIN)
        scores.append(float(masked_ssim(image[None], reference["image"][None].to(image.dtype), keep)[0]))
    return scores


def _sample_all(synth: Synthesizer, jobs: list[SampleJob], edit: ReferenceEdit | None, opts: dict, out: Path,
                settings: dict) -> tuple[list[list], list[dict]]:
    """Run ``jobs`` in batches and write each sample's files; returns the grid rows and the manifest rows."""
    from ..synthesis import run_batch, write_images
    from ..viz import overlay, to_rgb

    meta, per_condition = synth.meta, opts["num_per_condition"]
    batch_size = 1 if SOLVERS[synth.spec.method].adaptive else opts["batch_size"]  # its step control couples a batch
    grid, manifest, case = [], [], []
    with tqdm(total=len(jobs), desc=f"sampling ({opts['mode']}, {synth.spec.method}, NFE {synth.spec.nfe})",
              unit="img") as bar:
        for i in range(0, len(jobs), batch_size):
            batch = jobs[i:i + batch_size]
            done = run_batch(synth, batch, edit)
            kept = _ssim_outside(done)
            for j, job in enumerate(batch):
                condition, image = job.condition, done.images[j]
                name = condition.name if per_condition == 1 else f"{condition.name}_{job.index}"
                mask = done.loaded[j]["mask"] if done.loaded[j]["has_mask"] else None
                files = write_images(image, mask, meta, condition, out, name, nifti=not opts["volume"])
                if opts["volume"]:
                    case.append((condition, image, mask))
                if len(grid) < GRID_ROWS:
                    shown = mask if mask is not None else torch.zeros(len(meta.class_names), *image.shape[-2:])
                    grid.append([overlay(image, shown), to_rgb(image)]
                                + [to_rgb(x["image"]) for x in done.references[j:j + 1]])
                manifest.append({"name": name, "files": ";".join(str(f.relative_to(out)) for f in files),
                                 "condition": condition.source, "reference": condition.reference_name,
                                 "caption": condition.caption, "seed": job.seed, **settings, "nfe_used": done.nfe,
                                 "ssim_outside_lesion_unblended": kept[j]})
            bar.update(len(batch))
    if opts["volume"]:
        from ..synthesis import write_case

        files = write_case(case, meta, meta.data["intensity_percentiles"], out / "volume", opts["volume"])
        click.echo(f"wrote {opts['volume']}'s whole stack to {out / 'volume'} ({len(case)} slices synthesised, "
                   f"independently of each other; the others unchanged): {', '.join(f.name for f in files)}")
    return grid, manifest


@click.command("sample")
@run_options(default_out="runs/sample")
@click.option("--checkpoint", required=True, type=click.Path(exists=True),
              help="final.safetensors or best.safetensors of `meddtfm train`, its run folder, or a saved pipeline.")
@click.option("--teacher", type=click.Path(dir_okay=False), default=None,
              help="The U-KAN teacher, if it moved since training (reference mode).")
@click.option("--masks", "masks_dir", type=click.Path(file_okay=False, exists=True), help="Folder of condition masks.")
@click.option("--dataset", "split", type=click.Choice(["train", "val", "test", "all"]),
              help="Take the masks and captions of this split of the training dataset (its split: --set "
                   "data.split_seed, val_fraction, test_fraction are refused where they differ).")
@click.option("--captions", "captions_file", type=click.Path(dir_okay=False, exists=True), help="CSV name,caption.")
@click.option("--limit", type=int, default=0, show_default=True, help="Use the first N conditions (0: all).")
@click.option("--mode", type=click.Choice(["noise", "reference"]), default="noise", show_default=True)
@click.option("--reference", "reference_dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of reference images named like the conditions.")
@click.option("--volume", metavar="CASE",
              help="Every slice of the case CASE (any split of the training data config) that has a lesion mask; "
                   "also writes OUT/volume/CASE_<sequence>.nii.gz and CASE_seg.nii.gz, the case's whole stack with "
                   "its original affine and header, those slices replaced. Slices are synthesised independently "
                   "of each other (no 3D consistency); the others are the original's.")
@click.option("--dataset-reference", type=click.Choice(["healthy"]), default=None,
              help="With --dataset or --volume: the nearest healthy slice of the same subject.")
@click.option("--drop-class", "drop_classes", multiple=True, metavar="NAME",
              help="Class ablation: empty this class of every mask (repeatable; e.g. --drop-class ET keeps NCR and "
                   "ED). Captions are kept: change them with --captions.")
@click.option("--cfg-class", "cfg_classes", multiple=True, metavar="NAME=S",
              help="Per-class guidance (repeatable): add (S - 1) x the class's own contribution, the velocity with "
                   "the mask minus that without the class; S > 1 stresses it, 0 removes it. E.g. --cfg-class ET=3.")
@click.option("--start", type=click.Choice(["invert", "noise"]), default="invert", show_default=True,
              help="Reference mode: ODE inversion of the reference to --t0, or noising it to --t0.")
@click.option("--t0", type=float, default=0.0, show_default=True, help="Reference mode: start time in [0, 1).")
@click.option("--blend-dilation", type=int, default=None,
              help="Reference mode: keep the reference outside the new lesion dilated by N px (default: no blending); "
                   "the manifest's SSIM outside the lesion is then scored on the unblended output (one more pass).")
@click.option("--solver", type=click.Choice(["auto", *SOLVERS.names()]), default="auto", show_default=True,
              help=f"ODE solver: auto (heun for a flow; a distill-steps model's own k Euler steps), "
                   f"{SOLVERS.describe()}.")
@click.option("--nfe", type=int, default=None,
              help="Velocity evaluations per integration, a multiple of the solver's evaluations per step (--nfe 8 is "
                   "4 Heun steps, a flow's default; an adaptive solver picks its own). --start invert adds as many for "
                   "the inversion. A distill-steps model takes one of the step counts it was trained for (default: "
                   "the fewest).")
@click.option("--time-grid", type=click.Choice(["uniform", "shifted"]), default="uniform", show_default=True)
@click.option("--shift", type=float, default=3.0, show_default=True, help="Shifted grid: s > 1 puts steps near t = 1.")
@click.option("--cfg", "cfg_mask", type=float, default=2.0, show_default=True,
              help="Guidance scale of the mask (1: none).")
@click.option("--cfg-caption", type=float, default=None, help="Guidance scale of the caption (default: --cfg).")
@click.option("--num-per-condition", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
def sample(cfg: Config, out: Path, checkpoint: str, teacher: str | None, **opts) -> None:
    """Synthesise images for masks and/or captions; write PNGs, grid.png, NIfTI (BraTS) and manifest.csv to OUT."""
    from ..checkpoint import CheckpointError
    from ..flow.sampling import Guidance
    from ..pipeline import MedDTFMPipeline
    from ..synthesis import (
        ConditionSetError,
        ReferenceEdit,
        gather_conditions,
        sample_jobs,
        sampling_spec,
        training_data_config,
    )
    from ..training.distributed import pick_device
    from ..viz import save_labelled_grid

    _check_sources(opts)
    edit = ReferenceEdit(opts["start"], opts["t0"], opts["blend_dilation"]) if opts["mode"] == "reference" else None
    blend = opts["blend_dilation"]
    try:
        pipe = MedDTFMPipeline.from_pretrained(checkpoint, teacher, pick_device(cfg.train.device), edit is not None)
        meta = pipe.meta
        try:  # an NFE the solver or the few-step model cannot take
            spec = sampling_spec(meta.few_step, checkpoint, opts["solver"], opts["nfe"], opts["time_grid"],
                                 opts["shift"])
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        settings = {"mode": opts["mode"], "start": edit.start if edit else "", "t0": edit.t0 if edit else "",
                    "blend_dilation": "" if blend is None else blend, "solver": spec.method, "nfe": spec.nfe,
                    "time_grid": spec.grid, "cfg": opts["cfg_mask"],
                    "cfg_caption": opts["cfg_mask"] if opts["cfg_caption"] is None else opts["cfg_caption"],
                    "cfg_classes": " ".join(opts["cfg_classes"]), "drop_classes": " ".join(opts["drop_classes"]),
                    "checkpoint": checkpoint, "few_step": meta.few_step.method if meta.few_step else ""}
        guidance = Guidance(settings["cfg"], settings["cfg_caption"],
                            _class_scales(opts["cfg_classes"], meta.class_names))
        dropped = _class_indices(opts["drop_classes"], meta.class_names, "--drop-class")
        data = None
        if opts["split"] or opts["volume"]:
            params = click.get_current_context().params
            data = training_data_config(meta.data, params["config_path"], params["overrides"], checkpoint)
        conditions = gather_conditions(meta, masks_dir=opts["masks_dir"], split=opts["split"], data=data,
                                       volume=opts["volume"], captions_file=opts["captions_file"],
                                       reference_dir=opts["reference_dir"],
                                       healthy_references=opts["dataset_reference"] == "healthy",
                                       drop_classes=dropped, limit=opts["limit"])
        if data is not None:
            save_config(dataclasses.replace(cfg, data=data), out / "config.yaml")
        jobs = sample_jobs(conditions, opts["num_per_condition"], cfg.seed)
        if not jobs:
            raise click.UsageError("no conditions to sample")
        if edit is not None and edit.start == "invert" and opts["num_per_condition"] > 1:
            click.echo("note: --start invert is deterministic; samples of a condition differ only with --start noise",
                       err=True)
        grid, manifest = _sample_all(pipe.synthesizer(spec, guidance), jobs, edit, opts, out, settings)
    except ConditionSetError as err:  # a missing or unknown name, a dataset that does not fit the model
        raise click.UsageError(str(err)) from err
    except (ValueError, CheckpointError) as err:  # BadSampleError, ConditionError, bad solver settings
        raise click.ClickException(str(err)) from err
    save_labelled_grid(grid, ["mask over sample", "sample", "reference"], out / "grid.png")
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(manifest)
    click.echo(f"wrote {len(manifest)} samples to {out} (manifest.csv, grid.png)")
    kept = [r["ssim_outside_lesion_unblended"] for r in manifest if r["ssim_outside_lesion_unblended"] != ""]
    if kept:
        click.echo(f"SSIM to the reference outside the lesion (dilated {OUTSIDE_MARGIN} px) of the unblended output: "
                   f"mean {sum(kept) / len(kept):.4f} over {len(kept)} samples")
