"""``meddtfm sample``: synthesise images with a trained generator (paper §2.3), noise-based or reference-guided.

Conditions: ``--masks DIR`` (one file per condition, named by its stem: ``.npy`` one-hot ``K x H x W`` or
``H x W`` label map, or a PNG label map, value i = i-th class, BraTS's 4 = ET, 0/255 for one class;
resized to the model's resolution as the loaders do), ``--dataset SPLIT`` (the training data config,
changed by ``--config`` / ``--set``, except for the split keys ``data.split_seed``, ``val_fraction`` and
``test_fraction``: the split is the training run's, and a change is refused), or
``--captions FILE`` alone (csv ``name,caption``; with masks it sets their captions). References: ``--reference DIR`` (``NAME.npy`` ``C x H x W`` in [-1, 1], or an image for 1 or 3
channels) or ``--dataset-reference healthy``: the healthy slice of the same subject nearest the condition's.

OUT gets ``images/NAME[_CHANNEL].png``, ``grid.png`` (mask over sample | sample [| reference], first 32),
``nifti/NAME_<sequence>.nii.gz`` + ``NAME_seg.nii.gz`` for NIfTI datasets (``data.nifti_out``), and
``manifest.csv``; in reference mode its ``ssim_outside_lesion_unblended`` is the SSIM of each sample to its
reference outside the new lesion dilated by ``OUTSIDE_MARGIN`` px (how much anatomy the edit kept; the
command prints the mean), measured on the output without blending: with ``--blend-dilation`` the saved
image copies the reference there, so it is scored on the same start integrated once more unblended
(``nfe_used`` does not count that pass). Sample k of condition NAME uses ``sample_seed(--seed, NAME, k)``: the
same pixels whatever the batch size or the other conditions.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import torch
from PIL import Image
from tqdm import tqdm

from ..config import Config, DataConfig, save_config
from ..flow.solver import SOLVERS
from .common import run_options

if TYPE_CHECKING:
    from ..synthesis import GeneratorMeta, Synthesizer

GRID_ROWS = 32
OUTSIDE_MARGIN = 4  # px: "outside the lesion" is outside the new mask dilated by this much


@dataclasses.dataclass
class Condition:
    """One condition: name, origin, caption, and lazy loaders of its tensors (``load``: mask (K x R x R or
    None), has_mask; ``reference``: image (C x R x R) and, from a dataset, its mask and caption)."""

    name: str
    source: str
    caption: str
    load: Callable[[], dict]
    reference: Callable[[], dict] | None = None
    reference_name: str = ""
    nifti: tuple[tuple[str, ...], int] | None = None  # source volume per channel, slice index


def _files(folder: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            if p.stem in found:
                raise click.UsageError(f"{folder}: two files named {p.stem} ({found[p.stem].name}, {p.name})")
            found[p.stem] = p
    return found


def _pick(sample: dict, *keys: str) -> dict:
    return {k: sample[k] for k in keys}


def _dataset_conditions(meta: GeneratorMeta, data_cfg: DataConfig, split: str, healthy_refs: bool) -> list[Condition]:
    from ..data import build_dataset

    ds = build_dataset(data_cfg, split)
    got = (ds.channel_names, ds.class_names, data_cfg.resolution)
    trained = (meta.channel_names, meta.class_names, meta.resolution)
    if got != trained:
        raise click.UsageError("the dataset gives channels {}, classes {} at {} px; the model was trained on {}, {} at "
                               "{} px".format(*got, *trained))
    healthy, refs = None, {}
    if healthy_refs:
        healthy = build_dataset(dataclasses.replace(data_cfg, slices="healthy"), split)
        for j, r in enumerate(healthy.records):
            if r.label == "healthy":
                refs.setdefault(r.subject_id, []).append((r.slice_index, j))
    conds = []
    for r in ds.records:
        cond = Condition(r.sample_id, r.sample_id, r.caption, lambda r=r: _pick(ds.load(r), "mask", "has_mask"))
        if healthy is not None:
            if r.subject_id not in refs:
                raise click.UsageError(f"no healthy slice of subject {r.subject_id} in the {split} split "
                                       f"(for {r.sample_id})")
            j = min(refs[r.subject_id], key=lambda zj: abs(zj[0] - r.slice_index))[1]
            cond.reference = lambda j=j: _pick(healthy.load(healthy.records[j]), "image", "mask", "caption")
            cond.reference_name = healthy.records[j].sample_id
        if r.slice_index >= 0 and all(p.endswith((".nii", ".nii.gz")) for p in r.paths):
            cond.nifti = (r.paths, r.slice_index)
        conds.append(cond)
    return conds


def _conditions(meta: GeneratorMeta, opts: dict, data_cfg: Callable[[], DataConfig]) -> list[Condition]:
    from ..synthesis import read_mask_file, read_reference_file

    captions: dict[str, str] = {}
    if opts["captions_file"]:
        with open(opts["captions_file"], newline="") as fh:
            captions = {row["name"]: row["caption"] for row in csv.DictReader(fh)}
    if opts["split"]:
        conds = _dataset_conditions(meta, data_cfg(), opts["split"], opts["dataset_reference"] == "healthy")
    elif opts["masks_dir"]:
        def read(p: Path) -> dict:
            return {"mask": read_mask_file(p, meta.class_names, meta.resolution), "has_mask": True}

        conds = [Condition(n, str(p), "", functools.partial(read, p)) for n, p in _files(opts["masks_dir"]).items()]
    else:
        conds = [Condition(n, opts["captions_file"], "", lambda: {"mask": None, "has_mask": False}) for n in captions]
    unknown = sorted(set(captions) - {c.name for c in conds})
    if unknown:
        raise click.UsageError(f"{opts['captions_file']} names conditions that do not exist: {unknown[:5]}")
    refs = _files(opts["reference_dir"]) if opts["reference_dir"] else None

    def read_reference(p: Path) -> dict:
        return {"image": read_reference_file(p, len(meta.channel_names), meta.resolution)}

    for c in conds:
        c.caption = captions.get(c.name, c.caption)
        if refs is not None:
            if c.name not in refs:
                raise click.UsageError(f"{opts['reference_dir']}: no reference named {c.name} (.npy or image)")
            c.reference = functools.partial(read_reference, refs[c.name])
            c.reference_name = str(refs[c.name])
    return conds[:opts["limit"]] if opts["limit"] > 0 else conds


def _write_outputs(image: torch.Tensor, mask: torch.Tensor | None, meta: GeneratorMeta, cond: Condition, out: Path,
                   name: str) -> list[Path]:
    """``out/images/name.png`` (RGB) or ``name_<channel>.png`` per channel in grey, and the NIfTI files of a
    slice of a NIfTI volume (``data.nifti_out``); returns the paths written."""
    from ..data.nifti_out import write_sample
    from ..viz import to_rgb

    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    channels = meta.channel_names
    if channels == ("R", "G", "B"):
        tiles = [(folder / f"{name}.png", to_rgb(image))]
    else:
        tiles = [(folder / f"{name}_{ch}.png", to_rgb(image[c:c + 1])[:, :, 0]) for c, ch in enumerate(channels)]
    for path, pixels in tiles:
        Image.fromarray(pixels).save(path)
    files = [p for p, _ in tiles]
    if cond.nifti is not None:
        files += write_sample(image, mask, cond.nifti[0], meta.channel_names, meta.class_names, cond.nifti[1],
                              out / "nifti", name)
    return files


def _run_batch(synth: Synthesizer, batch: list[tuple[Condition, int, int]],
               opts: dict) -> tuple[torch.Tensor, torch.Tensor | None, int, list[dict], list[dict]]:
    """Samples (B, C, R, R), in reference mode also the same samples without blending (else None), and NFE
    for ``batch`` of (condition, k, seed), with what was loaded for it."""
    k, r = len(synth.meta.class_names), synth.meta.resolution

    def stack(rows: list[torch.Tensor | None]) -> torch.Tensor:
        return torch.stack([m if m is not None else torch.zeros(k, r, r) for m in rows])

    loaded = [c.load() for c, _, _ in batch]
    refs = [c.reference() for c, _, _ in batch] if opts["mode"] == "reference" else []
    seeds, captions = [s for _, _, s in batch], [c.caption for c, _, _ in batch]
    masks = None if all(x["mask"] is None for x in loaded) else stack([x["mask"] for x in loaded])
    has_mask = torch.tensor([bool(x["has_mask"]) for x in loaded])
    if not refs:
        result = synth.noise_based(seeds, masks, captions, has_mask)
        return result.x.cpu(), None, result.nfe, loaded, refs
    edit = synth.reference_guided(
        torch.stack([x["image"] for x in refs]), seeds, masks, captions, has_mask,
        ref_masks=stack([x.get("mask") for x in refs]), ref_captions=[x.get("caption", "") for x in refs],
        t0=opts["t0"], start=opts["start"], blend_dilation=opts["blend_dilation"], with_unblended=True)
    return edit.x.cpu(), edit.unblended.cpu(), edit.nfe, loaded, refs


def _ssim_outside(unblended: torch.Tensor | None, loaded: list[dict], refs: list[dict]) -> list[float | str]:
    """Reference mode: per sample, SSIM of the ``unblended`` output to its reference outside the new lesion
    ("" without a mask or reference). Blending copies the reference there, so the blended output would score
    about 1 whatever the model does."""
    from ..evaluation.metrics import masked_ssim
    from ..flow.sampling import lesion_region

    if unblended is None:
        return [""] * len(loaded)
    scores: list[float | str] = []
    for image, x, ref in zip(unblended, loaded, refs):
        if not x["has_mask"] or x["mask"] is None:
            scores.append("")
            continue
        keep = ~lesion_region(x["mask"][None].float(), OUTSIDE_MARGIN)
        scores.append(float(masked_ssim(image[None], ref["image"][None].to(image.dtype), keep)[0]))
    return scores


@click.command("sample")
@run_options(default_out="runs/sample")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, exists=True),
              help="final.safetensors or best.safetensors of `meddtfm train`.")
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
@click.option("--dataset-reference", type=click.Choice(["healthy"]), default=None,
              help="With --dataset: the nearest healthy slice of the same subject.")
@click.option("--start", type=click.Choice(["invert", "noise"]), default="invert", show_default=True,
              help="Reference mode: ODE inversion of the reference to --t0, or noising it to --t0.")
@click.option("--t0", type=float, default=0.0, show_default=True, help="Reference mode: start time in [0, 1).")
@click.option("--blend-dilation", type=int, default=None,
              help="Reference mode: keep the reference outside the new lesion dilated by N px (default: no blending); "
                   "the manifest's SSIM outside the lesion is then scored on the unblended output (one more pass).")
@click.option("--solver", type=click.Choice(SOLVERS.names()), default="heun", show_default=True,
              help=f"ODE solver: {SOLVERS.describe()}.")
@click.option("--nfe", type=int, default=8, show_default=True,
              help="Velocity evaluations per integration, a multiple of the solver's evaluations per step (--nfe 8 is "
                   "4 Heun steps; an adaptive solver picks its own). --start invert adds as many for the inversion.")
@click.option("--time-grid", type=click.Choice(["uniform", "shifted"]), default="uniform", show_default=True)
@click.option("--shift", type=float, default=3.0, show_default=True, help="Shifted grid: s > 1 puts steps near t = 1.")
@click.option("--cfg", "cfg_mask", type=float, default=2.0, show_default=True,
              help="Guidance scale of the mask (1: none).")
@click.option("--cfg-caption", type=float, default=None, help="Guidance scale of the caption (default: --cfg).")
@click.option("--num-per-condition", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
def sample(cfg: Config, out: Path, checkpoint: str, teacher: str | None, **opts) -> None:
    """Synthesise images for masks and/or captions; write PNGs, grid.png, NIfTI (BraTS) and manifest.csv to OUT."""
    from ..flow.sampling import Guidance, SolverSpec, sample_seed
    from ..synthesis import Synthesizer, load_generator, training_data_config
    from ..training.checkpoint import CheckpointError
    from ..training.distributed import pick_device
    from ..viz import overlay, save_grid, to_rgb

    if (opts["masks_dir"] and opts["split"]) or not (opts["masks_dir"] or opts["split"] or opts["captions_file"]):
        raise click.UsageError("give the conditions with one of --masks DIR, --dataset SPLIT or --captions FILE")
    reference = opts["mode"] == "reference"
    if len([o for o in ("reference_dir", "dataset_reference") if opts[o]]) != reference:
        raise click.UsageError("--mode reference needs one of --reference DIR, --dataset-reference; noise mode neither")
    if opts["dataset_reference"] and not opts["split"]:
        raise click.UsageError("--dataset-reference needs --dataset SPLIT")
    try:
        spec = SolverSpec(opts["solver"], opts["nfe"], opts["time_grid"], opts["shift"])
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    guidance = Guidance(opts["cfg_mask"], opts["cfg_mask"] if opts["cfg_caption"] is None else opts["cfg_caption"])
    blend = opts["blend_dilation"]
    settings = {"mode": opts["mode"], "start": opts["start"] if reference else "",
                "t0": opts["t0"] if reference else "", "blend_dilation": "" if blend is None else blend,
                "solver": spec.method, "nfe": spec.nfe, "time_grid": spec.grid, "cfg": guidance.mask,
                "cfg_caption": guidance.caption, "checkpoint": checkpoint}
    try:
        net, meta = load_generator(checkpoint, teacher, reference, pick_device(cfg.train.device))
        params = click.get_current_context().params
        data_cfg = functools.partial(training_data_config, meta.data, params["config_path"], params["overrides"],
                                     checkpoint)
        conds = _conditions(meta, opts, data_cfg)
        if opts["split"]:
            save_config(dataclasses.replace(cfg, data=data_cfg()), out / "config.yaml")
        synth = Synthesizer(net, meta, spec, guidance)
        jobs = [(c, k, sample_seed(cfg.seed, c.name, k)) for c in conds for k in range(opts["num_per_condition"])]
        if not jobs:
            raise click.UsageError("no conditions to sample")
        if reference and opts["start"] == "invert" and opts["num_per_condition"] > 1:
            click.echo("note: --start invert is deterministic; samples of a condition differ only with --start noise",
                       err=True)
        batch_size = 1 if SOLVERS[spec.method].adaptive else opts["batch_size"]  # its step control couples a batch
        grid, manifest = [], []
        with tqdm(total=len(jobs), desc=f"sampling ({opts['mode']}, {spec.method}, NFE {spec.nfe})", unit="img") as bar:
            for i in range(0, len(jobs), batch_size):
                batch = jobs[i:i + batch_size]
                images, unblended, nfe, loaded, refs = _run_batch(synth, batch, opts)
                kept = _ssim_outside(unblended, loaded, refs)
                for j, (c, k, seed) in enumerate(batch):
                    name = c.name if opts["num_per_condition"] == 1 else f"{c.name}_{k}"
                    mask = loaded[j]["mask"] if loaded[j]["has_mask"] else None
                    files = _write_outputs(images[j], mask, meta, c, out, name)
                    if len(grid) < GRID_ROWS:
                        shown = mask if mask is not None else torch.zeros(len(meta.class_names), *images.shape[-2:])
                        grid.append([overlay(images[j], shown), to_rgb(images[j])]
                                    + [to_rgb(x["image"]) for x in refs[j:j + 1]])
                    manifest.append({"name": name, "files": ";".join(str(f.relative_to(out)) for f in files),
                                     "condition": c.source, "reference": c.reference_name, "caption": c.caption,
                                     "seed": seed, **settings, "nfe_used": nfe,
                                     "ssim_outside_lesion_unblended": kept[j]})
                bar.update(len(batch))
    except (ValueError, CheckpointError) as err:  # BadSampleError, ConditionError, bad solver settings
        raise click.ClickException(str(err)) from err
    save_grid(grid, out / "grid.png")
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(manifest)
    click.echo(f"wrote {len(manifest)} samples to {out} (manifest.csv, grid.png)")
    kept = [r["ssim_outside_lesion_unblended"] for r in manifest if r["ssim_outside_lesion_unblended"] != ""]
    if kept:
        click.echo(f"SSIM to the reference outside the lesion (dilated {OUTSIDE_MARGIN} px) of the unblended output: "
                   f"mean {sum(kept) / len(kept):.4f} over {len(kept)} samples")
