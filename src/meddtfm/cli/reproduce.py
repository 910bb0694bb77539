"""``meddtfm reproduce table1``: the paper's Table 1, Fig. 2 and a convergence plot, trained and measured.

Per dataset of the preset: the U-KAN teacher and the evaluation U-Net (``pretrain-encoder``), then
pix2pixHD, MedGAN, Ours (no DT) and Med-DT-FM (``meddtfm train``) with one budget, scored identically
(``meddtfm.evaluation.compare``). OUT holds:

| path | what |
|---|---|
| ``table1.md``, ``table1.csv`` | one block per dataset, rows as in the paper, columns FRD FID SSIM MS-SSIM PSNR Dice |
| ``fig2.png`` | input mask, pix2pixHD, MedGAN, Ours: same masks and seed for all |
| ``convergence.png``, ``.csv`` | validation FRD (else validation ``L_FM``) vs steps, Med-DT-FM and no DT |
| ``DATASET/{teacher,segmenter,METHOD}/`` | the training runs (``train_result.json``: steps and seconds) |
| ``DATASET/eval/METHOD/`` | ``metrics.json`` / ``metrics.md`` of each method, as ``meddtfm evaluate`` writes them |

A run folder with ``final.safetensors`` is reused, one with checkpoints resumes; either must hold the same
configuration, else the command stops before training.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import click
from omegaconf import OmegaConf

from ..config import Config, ConfigError, load_config, save_config, to_dict
from ..evaluation.table1 import COLUMNS, METHODS, REPO, Block, Preset, Row, load_preset, preset_names

log = logging.getLogger(__name__)
FIG2_METHODS = ("pix2pixhd", "medgan", "meddtfm")
FIG2_COLUMNS = ("input mask", "pix2pixHD", "MedGAN", "Ours (Med-DT-FM)")


@dataclasses.dataclass
class Run:
    """One training run: its resolved config, folder, and ``ukan`` | ``unet`` | a ``meddtfm train --model``."""

    cfg: Config
    out: Path
    model: str


@dataclasses.dataclass
class Plan:
    """Everything one dataset needs; ``teacher`` / ``segmenter`` are None when given as files."""

    name: str
    teacher_file: Path
    segmenter_file: Path
    teacher: Run | None
    segmenter: Run | None
    methods: dict[str, Run]

    def runs(self) -> list[Run]:
        return [r for r in (self.teacher, self.segmenter, *self.methods.values()) if r is not None]


def _scoped(overrides: tuple[str, ...], names: list[str]) -> dict[str, list[str]]:
    """``--set [DATASET:]key=value`` -> dataset -> its overrides, in the order given."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for o in overrides:
        scope, sep, rest = o.partition(":")
        if sep and "=" not in scope:
            if scope not in names:
                raise click.UsageError(f"--set {o}: dataset {scope!r} is not run (running: {', '.join(names)})")
            out[scope].append(rest)
        else:
            for n in names:
                out[n].append(o)
    return out


def _files(values: tuple[str, ...], names: list[str], option: str) -> dict[str, Path]:
    """``--teacher [DATASET=]FILE`` (repeatable) -> dataset -> file."""
    out = {}
    for v in values:
        scope, sep, path = v.partition("=")
        if not sep:
            if len(names) != 1:
                raise click.UsageError(f"{option} {v}: name the dataset, {option} DATASET=FILE")
            scope, path = names[0], v
        if scope not in names or not Path(path).is_file():
            raise click.UsageError(f"{option} {v}: expected DATASET=FILE with DATASET in {names} and FILE existing")
        out[scope] = Path(path).resolve()
    return out


def _plan(preset: Preset, name: str, user: list[str], seed: int | None, out: Path, teacher: Path | None,
          segmenter: Path | None, need_segmenter: bool) -> Plan:
    """The resolved configs of one dataset's runs; the generators' steps come from the budget."""
    spec = preset.datasets[name]
    base = [*preset.common, *spec.overrides]
    if spec.root is not None:
        base.append(f"data.root={(REPO / spec.root).resolve()}")
    cfg_file = REPO / spec.config

    def config(extra: list[str]) -> Config:
        return load_config(cfg_file, [*base, *extra, *user], seed)

    folder = out / name
    teacher_run = None if teacher else Run(config(preset.teacher + ["encoder.model=ukan"]), folder / "teacher", "ukan")
    seg_run = (None if segmenter or not need_segmenter else
               Run(config(preset.segmenter + ["encoder.model=unet"]), folder / "segmenter", "unet"))
    teacher_file = teacher or folder / "teacher" / "best.safetensors"
    b, user_steps = preset.budget, any(o.split("=", 1)[0].strip() == "train.steps" for o in user)
    methods = {}
    for m in METHODS:
        cfg = config([*preset.methods.get(m.key, []), f"data.batch_size={b.batch_size}",
                      f"train.max_minutes={b.max_minutes}", *m.switch])
        per_step = cfg.data.batch_size * cfg.train.grad_accumulation
        steps = cfg.train.steps if user_steps else -(-b.images // per_step)
        needs_teacher = m.model == "meddtfm" and (cfg.flow.distills or cfg.flow.uses_reference)
        encoder = dataclasses.replace(cfg.encoder, checkpoint=str(teacher_file) if needs_teacher else None)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps), encoder=encoder)
        methods[m.key] = Run(cfg, folder / m.key, m.model)
    _check(name, methods)
    return Plan(name, teacher_file, segmenter or folder / "segmenter" / "best.safetensors", teacher_run, seg_run,
                methods)


def _check(name: str, methods: dict[str, Run]) -> None:
    """Equal budgets, the no-DT switch, and readable data, before any training."""
    budgets = {(r.cfg.train.steps * r.cfg.data.batch_size * r.cfg.train.grad_accumulation, r.cfg.train.max_minutes)
               for r in methods.values()}
    if len(budgets) != 1:
        raise click.UsageError(f"{name}: the generators' budgets differ (images seen, max minutes): {sorted(budgets)}")
    nodt = methods["nodt"].cfg
    if nodt.flow.distills or nodt.flow.uses_reference or nodt.encoder.checkpoint or not methods["meddtfm"].cfg.flow.distills:
        raise click.UsageError(f"{name}: Med-DT-FM needs flow.dt_weights > 0, and Ours (no DT) no teacher at all "
                               "(flow.dt_weights all 0 and flow.reference=false)")
    data = methods["meddtfm"].cfg.data
    if data.name != "phantoms" and not (data.root and Path(data.root).is_dir()):
        raise click.UsageError(f"{name}: data.root={data.root} is not a folder; point it at the download with "
                               f"--set {name}:data.root=/path")
    if data.test_fraction <= 0:
        raise click.UsageError(f"{name}: Table 1 is scored on the test split; set data.test_fraction > 0")


def _check_reuse(run: Run) -> None:
    """A started run folder (final weights or checkpoints) must hold this run's configuration."""
    from ..checkpoint import list_states
    from ..training.resume import config_changes

    saved = run.out / "config.yaml"
    if saved.is_file() and ((run.out / "final.safetensors").is_file() or list_states(run.out / "checkpoints")):
        diff = [key for key, _, _ in config_changes(OmegaConf.to_container(OmegaConf.load(saved)), to_dict(run.cfg))]
        if diff:
            raise click.UsageError(f"{run.out} was trained with other settings ({', '.join(diff[:6])}); "
                                   "use another --out, or delete that folder to retrain it")


def _train(run: Run, what: str) -> dict:
    """Train (or resume) ``run`` unless its final weights exist; ``{"step", "seconds"}`` (None: not recorded)."""
    from ..checkpoint import load_weights
    from .train import run_pretraining, run_training

    record = run.out / "train_result.json"
    if (run.out / "final.safetensors").is_file():
        log.info("%s: reusing %s", what, run.out / "final.safetensors")
        if record.is_file():
            return json.loads(record.read_text())
        return {"step": int(load_weights(run.out / "final.safetensors")[1].get("step", 0)), "seconds": None}
    log.info("%s: training into %s (%d steps)", what, run.out, run.cfg.train.steps)
    save_config(run.cfg, run.out / "config.yaml")
    if run.model in ("ukan", "unet"):
        result, _ = run_pretraining(run.cfg, run.out)
    else:
        result, _ = run_training(run.cfg, run.out, run.model)
    done = {"step": result.step, "seconds": result.seconds}
    record.write_text(json.dumps(done) + "\n")
    return done


def _metrics(preset: Preset, inception: str | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """The metrics to compute, and why each other one is not."""
    from ..evaluation.distribution import MissingDependencyError, require_frd

    wanted = [*preset.evaluation.metrics, *(["fid"] if inception and "fid" not in preset.evaluation.metrics else [])]
    missing = {c[2]: "off in this preset" for c in COLUMNS if c[2] not in wanted}
    if "frd" in wanted:
        try:
            require_frd()
        except MissingDependencyError:
            missing["frd"] = "pip install -e '.[eval]'"
    if "fid" in wanted and not inception:
        missing["fid"] = "needs --inception-weights FILE"
    return tuple(m for m in wanted if m not in missing), missing


def _val_fm(metrics_csv: Path) -> list[tuple[float, float]]:
    """(step, validation L_FM) from a run's ``metrics.csv``."""
    with open(metrics_csv, newline="") as fh:
        return [(float(r["step"]), float(r["value"])) for r in csv.DictReader(fh)
                if r["split"] == "val" and r["name"] == "fm_loss"]


def _convergence(plan: Plan, preset: Preset, metrics: tuple[str, ...], missing: dict[str, str], scratch: Path,
                 device) -> tuple[dict[str, list], str, str]:
    """Curves of Med-DT-FM and no DT: validation FRD at each kept checkpoint, else the logged validation L_FM."""
    from ..checkpoint import list_states
    from ..evaluation.compare import Scorer, checkpoint_frd, state_as_weights

    flows = {"Med-DT-FM": plan.methods["meddtfm"], "Ours (no DT)": plan.methods["nodt"]}
    n = preset.convergence_frd_images
    if n > 0 and "frd" in metrics:
        cfg = flows["Med-DT-FM"].cfg
        val = Scorer.on_split(cfg.data, "val", cfg.seed, spec=preset.evaluation, metrics=("frd",), device=device,
                              workdir=scratch / f"{plan.name}-val")
        points = {label: [state_as_weights(p, run.out / "final.safetensors", scratch / f"{run.out.name}-{p.stem}.st")
                          for p in list_states(run.out / "checkpoints")] for label, run in flows.items()}
        v = preset.evaluation.frd_version
        ylabel = f"validation FRD {v} ({'log, ' if v == 'v1' else ''}{min(n, len(val.dataset))} images)"
        return checkpoint_frd(val, points, n), ylabel, ""
    why = missing.get("frd") or "per-checkpoint FRD off in this preset"
    curves = {label: _val_fm(run.out / "metrics.csv") for label, run in flows.items()}
    return curves, "validation L_FM (fixed noise and t)", f"FRD n/a: {why}"


def _score(plan: Plan, preset: Preset, metrics: tuple[str, ...], missing: dict[str, str], inception: str | None,
           out: Path, trained: dict[str, dict], scratch: Path, device) -> tuple[Block, list]:
    """Evaluate the four generators of one dataset; its table block and its Fig. 2 rows."""
    from ..evaluation.compare import Scorer, compare, fig2_rows
    from ..evaluation.report import summarize, write_report
    from ..evaluation.table1 import budget_statement

    cfg = plan.methods["meddtfm"].cfg
    segmenter = str(plan.segmenter_file) if "dice" in metrics else None
    scorer = Scorer.on_split(cfg.data, "test", cfg.seed, spec=preset.evaluation, metrics=metrics, device=device,
                             workdir=scratch / plan.name, segmenter=segmenter, inception=inception)
    weights = {k: r.out / "final.safetensors" for k, r in plan.methods.items()}
    result = compare(scorer, weights, grid_dir=out / plan.name / "eval")
    settings = {"split": "test", "samples": result.samples, "metrics": list(metrics),
                "evaluation": dataclasses.asdict(preset.evaluation), "segmenter": segmenter,
                "inception_weights": inception}
    rows = []
    for m in METHODS:
        write_report(out / plan.name / "eval" / m.key, result.runs[m.key], result.reference, result.notes,
                     {**settings, "checkpoint": str(weights[m.key])})
        c, t = plan.methods[m.key].cfg, trained[m.key]
        rows.append(Row(m, summarize(result.runs[m.key]), t["step"],
                        t["step"] * c.data.batch_size * c.train.grad_accumulation, t["seconds"]))
    d = scorer.dataset
    description = (f"{cfg.data.name}, {cfg.data.resolution} px, channels {', '.join(d.channel_names)}, classes "
                   f"{', '.join(d.class_names)}; scored on {result.samples} test images, {result.pairs} of them "
                   "paired with the real image of their mask for SSIM, MS-SSIM and PSNR. "
                   + budget_statement(cfg.train.steps, cfg.data.batch_size, cfg.train.grad_accumulation,
                                      cfg.train.max_minutes))
    tiles = fig2_rows(scorer, {k: weights[k] for k in FIG2_METHODS}, preset.fig2_rows, preset.evaluation.seeds[0])
    return Block(plan.name, description, rows, result.reference, missing, result.notes,
                 preset.evaluation.average_of), tiles


def _run(preset: Preset, plans: list[Plan], metrics: tuple[str, ...], missing: dict[str, str],
         inception: str | None, out: Path, name: str) -> str:
    """All stages, dataset by dataset; then the tables and figures. Returns table1.md."""
    from ..evaluation.figures import labelled_grid, line_plot, save_column
    from ..evaluation.table1 import write_tables
    from ..training.distributed import pick_device

    blocks, groups, panels, curves_csv = [], {}, [], []
    stages = sum(2 + len(METHODS) + (p.teacher is not None) + (p.segmenter is not None) for p in plans)
    done = 0

    def stage(what: str) -> str:
        nonlocal done
        done += 1
        log.info("stage %d/%d: %s", done, stages, what)
        return what

    with tempfile.TemporaryDirectory(prefix="meddtfm-table1-") as tmp:
        for plan in plans:
            if plan.teacher is not None:
                _train(plan.teacher, stage(f"{plan.name}: U-KAN teacher (pretrain-encoder)"))
            if plan.segmenter is not None:
                _train(plan.segmenter, stage(f"{plan.name}: evaluation U-Net (pretrain-encoder --model unet)"))
            trained = {m.key: _train(plan.methods[m.key], stage(f"{plan.name}: {m.label} (train --model {m.model})"))
                       for m in METHODS}
            device = pick_device(plan.methods["meddtfm"].cfg.train.device)
            stage(f"{plan.name}: evaluate the four methods and draw Fig. 2")
            block, tiles = _score(plan, preset, metrics, missing, inception, out, trained, Path(tmp), device)
            blocks.append(block)
            groups[plan.name] = tiles
            stage(f"{plan.name}: convergence of Med-DT-FM vs no DT")
            curves, ylabel, why = _convergence(plan, preset, metrics, missing, Path(tmp), device)
            title = f"{plan.name}: {ylabel} vs training step" + (f" ({why})" if why else "")
            panels.append(line_plot(curves, "training step", ylabel, title))
            curves_csv += [[plan.name, label, int(x), ylabel, y] for label, pts in curves.items() for x, y in pts]
    labelled_grid(FIG2_COLUMNS, groups, out / "fig2.png")
    save_column(panels, out / "convergence.png")
    with open(out / "convergence.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["dataset", "method", "step", "metric", "value"], *curves_csv])
    e = preset.evaluation
    preamble = [
        f"Preset `{name}`, datasets {', '.join(p.name for p in plans)}, seed {plans[0].methods['meddtfm'].cfg.seed}, "
        f"device {pick_device(plans[0].methods['meddtfm'].cfg.train.device)}. Written by `meddtfm reproduce table1`.",
        "Scoring, identical for every method: noise-based synthesis for the masks of the test split "
        f"({'first ' + str(e.limit) if e.limit else 'all'} samples), sampling seeds {', '.join(map(str, e.seeds))} "
        f"(mean ± std over seeds); the flows integrate with {e.solver}, NFE {e.nfe}, guidance {e.cfg:g}. SSIM, "
        "MS-SSIM and PSNR against the real image of each mask, of one draw and (avg-K) of the pixel mean of "
        f"{e.average_of} draws, which is what a GAN's near-conditional-mean output is compared with fairly; Dice "
        "(lesion-present classes) of the independent MONAI U-Net (trained on the real training split, never the "
        "U-KAN teacher) on the synthetic images against their masks; FRD "
        f"{e.frd_version} (frd-score, v1 = log Fréchet radiomics distance) and FID (FID InceptionV3) against the "
        "real test images. ↓ lower is better, ↑ higher is better; n/a says why a metric was not computed.",
    ]
    return write_tables(out, blocks, preamble)


@click.group("reproduce")
def reproduce() -> None:
    """Reproduce the paper's results end to end."""


@reproduce.command("table1")
@click.option("--preset", required=True, help=f"Budget preset: {' | '.join(preset_names())} "
              "(configs/table1/NAME.yaml), or a preset YAML file.")
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
    """Train pix2pixHD, MedGAN, Ours (no DT) and Med-DT-FM with equal budgets, score them, write OUT/table1.md."""
    try:
        chosen = load_preset(preset)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    names = list(chosen.datasets) if datasets is None else [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in chosen.datasets]
    if unknown or not names:
        raise click.UsageError(f"unknown datasets {unknown} for preset {preset}: choose from "
                               f"{', '.join(chosen.datasets)}")
    chosen.datasets = {n: chosen.datasets[n] for n in names}
    metrics, missing = _metrics(chosen, inception_weights)
    out_dir = Path(out).resolve()
    user, teachers = _scoped(overrides, names), _files(teacher, names, "--teacher")
    segmenters = _files(segmenter, names, "--segmenter")
    try:
        plans = [_plan(chosen, n, user[n], seed, out_dir, teachers.get(n), segmenters.get(n), "dice" in metrics)
                 for n in names]
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    for run in (r for plan in plans for r in plan.runs()):
        _check_reuse(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(chosen, out_dir / "preset.yaml")
    click.echo(_run(chosen, plans, metrics, missing, inception_weights, out_dir, preset))
