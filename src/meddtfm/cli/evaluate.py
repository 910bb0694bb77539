"""``meddtfm evaluate``: paired, mask-consistency and distribution metrics, mean +- std over runs."""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import click

from ..config import Config
from ..evaluation.folders import Folder, Masks, add_real_folder, folder_batches
from ..evaluation.runner import METRICS, Evaluation, Setup, needs_segmenter
from ..flow.solver import SOLVERS
from .common import run_options


def _seeds(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        seeds = [int(s) for s in value.replace(",", " ").split()]
    except ValueError as err:
        raise click.BadParameter(f"expected integers like 0,1,2, got {value!r}") from err
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"expected distinct integers like 0,1,2, got {value!r}")
    return seeds


def _metrics(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(m for m in value.replace(",", " ").split())
    unknown = sorted(set(names) - set(METRICS))
    if unknown or not names:
        raise click.BadParameter(f"unknown metrics {unknown}; choose from {', '.join(METRICS.names())}")
    return names


def _requirements(metrics: tuple[str, ...], segmenter: str | None, inception: str | None, masks: str | None, *,
                  folder_mode: bool) -> None:
    """Stop before any work, naming every missing input or package at once."""
    from ..evaluation.distribution import MissingDependencyError, require_frd
    from ..evaluation.inception import WEIGHTS_HELP

    problems = []
    by_segmenter = [m for m in metrics if needs_segmenter([m])]
    if by_segmenter and not segmenter:
        problems.append(f"{' and '.join(by_segmenter)} need --segmenter FILE: the MONAI U-Net from `meddtfm "
                        f"pretrain-encoder --model unet` (its best.safetensors); or leave them out of --metrics")
    if by_segmenter and folder_mode and not masks:
        problems.append(f"{' and '.join(by_segmenter)} on folders need --masks DIR (the conditioning masks, named "
                        "like the images)")
    if "fid" in metrics and not inception:
        problems.append(WEIGHTS_HELP)
    if "frd" in metrics:
        try:
            require_frd()
        except MissingDependencyError as err:
            problems.append(str(err))
    if problems:
        raise click.UsageError("cannot evaluate:\n- " + "\n- ".join(problems))


@click.command("evaluate")
@run_options(default_out="runs/evaluate")
@click.option("--real", type=click.Path(file_okay=False, exists=True), help="Mode A: folder of real images.")
@click.option("--fake", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Mode A: folder of synthetic images named like their real image / mask; repeat it, one per seed.")
@click.option("--masks", type=click.Path(file_okay=False, exists=True),
              help="Mode A: conditioning masks by name (binary, or label maps listed by DIR/classes.txt).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True),
              help="Mode B: a `meddtfm train` generator (meddtfm, pix2pixhd or medgan) to sample from.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
              help="Mode B: split of the checkpoint's dataset whose masks condition: the training run's split "
                   "(a --set or --config that changes data.split_seed, val_fraction or test_fraction is refused); "
                   "other data.* keys override its data config (data.root: the data moved).")
@click.option("--seeds", default="0", show_default=True, callback=_seeds, help="Mode B: sampling seeds, e.g. 0,1,2.")
@click.option("--mode", "sample_mode", type=click.Choice(["noise", "reference"]), default="noise", show_default=True,
              help="Mode B: noise-based (Eq. 7) or reference-guided (Eq. 6, anatomy of the next sample) synthesis.")
@click.option("--solver", type=click.Choice(["auto", *SOLVERS.names()]), default="auto", show_default=True,
              help=f"Mode B: ODE solver (as in `meddtfm sample`): auto (heun for a flow; a distill-steps model's own "
                   f"k Euler steps), {SOLVERS.describe()}.")
@click.option("--nfe", type=int, default=None,
              help="Mode B: velocity evaluations per integration (default 8; heun: 2 per step, so 8 is 4 steps; "
                   "reference mode adds as many for the inversion). A distill-steps model takes one of the step counts "
                   "it was trained for (default: the fewest).")
@click.option("--cfg", "cfg_mask", type=float, default=2.0, show_default=True,
              help="Mode B: guidance scale of the mask.")
@click.option("--cfg-caption", type=float, default=None, help="Mode B: guidance scale of the caption (default: --cfg).")
@click.option("--t0", type=float, default=0.0, show_default=True,
              help="Mode B, reference: start time of the inversion.")
@click.option("--teacher", type=click.Path(dir_okay=False, exists=True),
              help="Mode B, reference: the U-KAN teacher, if it moved since training.")
@click.option("--limit", type=int, default=0, show_default=True, help="Mode B: use the first N samples (0: all).")
@click.option("--segmenter", type=click.Path(dir_okay=False, exists=True),
              help="The evaluation U-Net (pretrain-encoder --model unet); a U-KAN is refused.")
@click.option("--inception-weights", type=click.Path(dir_okay=False, exists=True),
              help="pt_inception-2015-12-05-6726825d.pth (the FID InceptionV3) for FID and KID.")
@click.option("--metrics", default=",".join(METRICS.names()), show_default=True, callback=_metrics,
              help=f"Comma-separated subset of the metrics: {METRICS.describe()}.")
@click.option("--frd-version", type=click.Choice(["v0", "v1"]), default="v1", show_default=True)
@click.option("--batch-size", type=int, default=None, help="Images per batch (default: data.batch_size).")
def evaluate(cfg: Config, out: Path, real: str | None, fake: tuple[str, ...], masks: str | None,
             checkpoint: str | None, split: str, seeds: list[int], sample_mode: str, solver: str, nfe: int | None,
             cfg_mask: float, cfg_caption: float | None, t0: float, teacher: str | None, limit: int,
             segmenter: str | None, inception_weights: str | None, metrics: tuple[str, ...], frd_version: str,
             batch_size: int | None) -> None:
    """Score synthetic images; write OUT/metrics.json, OUT/metrics.md and sample grids.

    Mode A: --real DIR --fake DIR [--fake DIR ...] [--masks DIR]. Mode B: --checkpoint FILE --split test
    --seeds 0,1,2 [--mode noise|reference]. Each --fake folder or seed is one run; the table gives mean +- std.
    """
    from ..checkpoint import CheckpointError
    from ..data.errors import BadSampleError
    from ..evaluation.consistency import SegmenterError
    from ..evaluation.inception import InceptionWeightsError

    if (checkpoint is None and not (real and fake)) or (checkpoint and (real or fake or masks)):
        raise click.UsageError("give either --real DIR --fake DIR (mode A) or --checkpoint FILE (mode B)")
    _requirements(metrics, segmenter, inception_weights, masks, folder_mode=checkpoint is None)
    try:
        with tempfile.TemporaryDirectory(prefix="meddtfm-eval-") as scratch:
            common = _Common(cfg, out, Path(scratch), metrics, segmenter, inception_weights, frd_version,
                             batch_size or cfg.data.batch_size)
            if checkpoint is None:
                runs, evaluation, settings = _folders(common, real, fake, masks)
            else:
                sampling = {"nfe": nfe, "solver": solver, "cfg_mask": cfg_mask, "cfg_caption": cfg_caption, "t0": t0,
                            "teacher": teacher}
                runs, evaluation, settings = _checkpoint(common, checkpoint, split, seeds, sample_mode, limit, sampling)
    except (BadSampleError, SegmenterError, InceptionWeightsError, CheckpointError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    from ..evaluation.report import write_report

    inception = evaluation.setup.inception
    settings.update(counts=evaluation.counts, metrics=list(metrics), segmenter=segmenter,
                    inception_weights=inception_weights,
                    inception_reference=inception.reference_weights if inception is not None else None,
                    frd_version=frd_version if "frd" in metrics else None)
    click.echo(write_report(out, runs, evaluation.reference(), evaluation.notes, settings))


@dataclasses.dataclass
class _Common:
    """The options both modes share."""

    cfg: Config
    out: Path
    scratch: Path
    metrics: tuple[str, ...]
    segmenter: str | None
    inception: str | None
    frd_version: str
    batch_size: int

    def evaluation(self, channel_names: tuple[str, ...], class_names: tuple[str, ...],
                   data: dict | None = None) -> Evaluation:
        """The networks loaded and checked against the data (``data``: its config, if known: split and size)."""
        from ..evaluation.consistency import load_eval_segmenter
        from ..evaluation.inception import load_inception
        from ..training.distributed import pick_device

        device = pick_device(self.cfg.train.device)
        seg = (load_eval_segmenter(self.segmenter, len(channel_names), class_names, channel_names, data=data).to(device)
               if needs_segmenter(self.metrics) else None)
        net = load_inception(self.inception).to(device) if "fid" in self.metrics else None
        return Evaluation(Setup(self.metrics, channel_names, class_names, self.scratch, seg, net, self.frd_version,
                                grid_dir=self.out))


def _folders(c: _Common, real: str, fakes: tuple[str, ...], masks: str | None) -> tuple[dict, Evaluation, dict]:
    """Mode A: the real folder once, then one run per synthetic folder (files matched by name)."""
    real_folder, mask_folder = Folder.scan(real), Masks(masks) if masks else None
    fake_folders = [Folder.scan(f) for f in fakes]
    channels = fake_folders[0].channel_names()
    classes = mask_folder.class_names if mask_folder else ("lesion",)
    evaluation = c.evaluation(channels, classes)
    add_real_folder(evaluation, real_folder, mask_folder, c.batch_size)
    runs: dict[str, dict[str, float]] = {}
    for i, (path, folder) in enumerate(zip(fakes, fake_folders)):
        label = Path(path).name if Path(path).name not in runs else f"{Path(path).name}_{i}"
        pairs = real_folder if "paired" in c.metrics else None
        runs[label] = evaluation.run(folder_batches(folder, pairs, mask_folder, c.batch_size), label)
    return runs, evaluation, {"mode": "folders", "real": real, "fake": list(fakes), "masks": masks,
                              "channel_names": list(channels), "class_names": list(classes)}


def _checkpoint(c: _Common, checkpoint: str, split: str, seeds: list[int], sample_mode: str, limit: int,
                sampling: dict) -> tuple[dict, Evaluation, dict]:
    """Mode B: sample the checkpoint for the masks of ``split``, one run per seed."""
    from torch.utils.data import DataLoader, Subset

    from ..data import build_dataset, loader_workers
    from ..evaluation.generation import WithReference, generated_batches, load_generate
    from ..synthesis import training_data_config
    from ..training.distributed import pick_device

    generate, info = load_generate(checkpoint, sample_mode, pick_device(c.cfg.train.device), **sampling)
    params = click.get_current_context().params
    data = training_data_config(info.pop("data"), params.get("config_path"), params.get("overrides", ()), checkpoint)
    dataset = build_dataset(data, split)
    dataset = Subset(dataset, range(min(limit, len(dataset)))) if limit > 0 else dataset
    dataset = WithReference(dataset) if sample_mode == "reference" else dataset
    loader = DataLoader(dataset, batch_size=c.batch_size, shuffle=False, num_workers=loader_workers(data.num_workers))
    evaluation = c.evaluation(tuple(info["channel_names"]), tuple(info["class_names"]), dataclasses.asdict(data))
    runs: dict[str, dict[str, float]] = {}
    for i, seed in enumerate(seeds):
        on_real = (lambda b: evaluation.add_real(b["image"], b["mask"], b["has_mask"])) if i == 0 else None
        batches = generated_batches(loader, generate, seed, sample_mode, on_real)
        runs[f"seed{seed}"] = evaluation.run(batches, f"seed{seed}")
    if info.get("deterministic"):
        evaluation.notes.append(f"{info['model']} is deterministic: every seed gives the same images (std 0)")
    if sample_mode == "reference":
        evaluation.notes.append("reference mode: sample i has its own mask in the anatomy of sample i+1 of the split "
                                "(inverted to t0); its paired metrics compare with that reference image")
    return runs, evaluation, {**info, "checkpoint": checkpoint, "split": split, "split_seed": data.split_seed,
                              "seeds": seeds, "samples": len(dataset), "data": dataclasses.asdict(data)}
