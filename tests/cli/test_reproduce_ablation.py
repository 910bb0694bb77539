"""``meddtfm reproduce ablation``: the ci preset end to end on the validation split, reuse, ``--only``,
``--variants``, ``--jobs 2`` against ``--jobs 1``, and errors named before training."""
import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import meddtfm.data
import meddtfm.experiments.compare
from meddtfm.checkpoint import load_weights
from meddtfm.cli.main import cli
from meddtfm.config import load_config
from meddtfm.experiments.ablation import score
from meddtfm.experiments.compare import Scorer
from meddtfm.experiments.presets import EvalSpec, preset_folder

RUNS = [f"{v}/seed{k}" for v in ("paper", "nodt") for k in (0, 1)]
NUMBERS = ["SSIM", "SSIM avg-4", "Dice"]  # the columns every test preset computes


def _ablation(*args):
    return CliRunner().invoke(cli, ["reproduce", "ablation", *args])


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "ablation.csv", newline="") as fh:
        return {r["variant"]: r for r in csv.DictReader(fh)}


def _mtimes(out: Path, runs=RUNS) -> dict[str, int]:
    return {r: (out / "phantoms" / r / "final.safetensors").stat().st_mtime_ns for r in runs}


def _variants_file(path: Path, variants: list[dict]) -> str:
    path.write_text(yaml.safe_dump(variants))
    return str(path)


PAPER = {"name": "paper", "description": "the paper's form", "overrides": []}


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    """The ci preset run once, recording every split any dataset was built for."""
    out, splits = tmp_path_factory.mktemp("ablation"), []

    def spy(build):
        def wrapped(cfg, split="train", seed=0):
            splits.append(split)
            return build(cfg, split, seed)
        return wrapped

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(meddtfm.data, "build_dataset", spy(meddtfm.data.build_dataset))
        mp.setattr(meddtfm.experiments.compare, "build_dataset", spy(meddtfm.experiments.compare.build_dataset))
        result = _ablation("--preset", "ci", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result, splits


def test_ci_writes_mean_and_std_over_two_training_seeds_per_variant(ci):
    out, result, _ = ci
    rows = _rows(out)
    assert list(rows) == ["paper", "nodt"] and rows["paper"]["reference"] == "yes"
    has_frd = importlib.util.find_spec("frd_score") is not None
    for r in rows.values():
        assert (r["seeds"], r["images_seen"], r["steps"]) == ("0 1", "16", "4"), "equal budgets: 4 steps x batch 4"
        for column in NUMBERS + (["FRD"] if has_frd else []):
            assert r[column] not in ("", "n/a") and float(r[f"{column}_std"]) >= 0, (column, r)
        assert float(r["SSIM avg-4"]) != pytest.approx(float(r["SSIM"])), "avg of 4 draws is another image"
        assert float(r["train_seconds"]) > 0
    assert rows["nodt"]["SSIM_differs"] in ("yes", "no") and rows["paper"]["SSIM_differs"] == ""
    assert rows["nodt"]["overrides"] == "flow.dt_weights=[0,0,0,0] flow.reference=false"
    md = (out / "ablation.md").read_text()
    assert md in result.output and "| paper (reference) |" in md and "| nodt |" in md
    assert "**validation split**" in md and "heun, NFE 4, guidance 2" in md
    assert "16 images seen = 4 steps x batch 4" in md
    # Each cell is report.summarize over the runs' own metrics.json.
    paper = [json.loads((out / "phantoms" / "eval" / "paper" / f"seed{k}" / "metrics.json").read_text())
             for k in (0, 1)]
    ssim = [next(iter(d["runs"].values()))["ssim/mean"] for d in paper]
    assert float(rows["paper"]["SSIM"]) == pytest.approx(sum(ssim) / 2)
    with open(out / "convergence.csv", newline="") as fh:
        curves = list(csv.DictReader(fh))
    assert {(c["variant"], c["images_seen"]) for c in curves} == {(v, x) for v in ("paper", "nodt")
                                                                   for x in ("8", "16")}
    for name in ("convergence.png", "bars.png"):
        with Image.open(out / name) as img:
            assert img.size[0] == 720 and img.size[1] >= 440
    assert all((out / "phantoms" / r / "config.yaml").is_file() for r in RUNS)


def test_the_ablation_never_reads_the_test_split(ci):
    out, _, splits = ci
    assert "val" in splits and "test" not in splits, splits
    doc = json.loads((out / "phantoms" / "eval" / "nodt" / "seed1" / "metrics.json").read_text())
    scored = doc["settings"]["key"]["evaluation"]
    assert scored["split"] == "val" and scored["seeds"] == [1], "seed k's run samples with seed k"
    val = Scorer.on_split(load_config(out / "phantoms" / "nodt" / "seed1" / "config.yaml").data, "val", 0,
                          spec=EvalSpec(), metrics=(), device=torch.device("cpu"), workdir=out)
    assert doc["settings"]["samples"] == min(8, len(val.dataset))


def test_rerun_reuses_every_run_and_its_scores(ci):
    out, _, _ = ci
    before, table = _mtimes(out), (out / "ablation.csv").read_text()
    result = _ablation("--preset", "ci", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert _mtimes(out) == before and (out / "ablation.csv").read_text() == table


def test_a_changed_variant_is_refused_before_training(ci, tmp_path):
    out, _, _ = ci
    changed = _variants_file(tmp_path / "v.yaml", [{**PAPER, "overrides": ["train.lr=0.5"]}])
    result = _ablation("--preset", "ci", "--out", str(out), "--variants", changed)
    assert result.exit_code == 2 and "trained with other settings (train.lr)" in result.output


@pytest.fixture(scope="module")
def jobs2(ci, tmp_path_factory):
    """Training seed 1 of paper and of a variant that fails in its child, with --jobs 2, A's segmenters, no FRD."""
    a, tmp = ci[0], tmp_path_factory.mktemp("jobs2")
    preset = yaml.safe_load((preset_folder("ablation") / "ci.yaml").read_text())
    broken = {"name": "broken", "description": "phantoms have no lesion ids", "overrides":
              ["flow.reference_source=same_lesion"]}
    preset.update(seeds=[1], variants=[preset["variants"][0], broken])
    preset["evaluation"]["metrics"] = ["paired", "dice"]  # FRD costs ~2 s a run here; the ci fixture has it
    (tmp / "p.yaml").write_text(yaml.safe_dump(preset))
    result = _ablation("--preset", str(tmp / "p.yaml"), "--out", str(tmp / "b"), "--jobs", "2",
                       "--teacher", str(a / "phantoms" / "teacher" / "best.safetensors"),
                       "--segmenter", str(a / "phantoms" / "segmenter" / "best.safetensors"))
    return tmp / "b", tmp / "p.yaml", result


def test_jobs_2_trains_in_child_processes_like_jobs_1(ci, jobs2):
    """Same configs and seeds, one thread each: the children's weights equal the in-process runs' bit for bit,
    so the scores are the same. A variant that fails in its child is reported with its log; the others finish.
    """
    a, (b, _, result) = ci[0], jobs2
    log = b / "phantoms" / "broken" / "seed1" / "train.log"
    assert result.exit_code == 1 and "1 run(s) failed" in result.output and str(log) in result.output
    assert "same_lesion is for single-image datasets" in log.read_text()
    assert f"phantoms: broken seed 1 (exit status 2, log `{log}`)" in (b / "ablation.md").read_text()
    rows = _rows(b)
    assert list(rows) == ["paper"] and rows["paper"]["FRD"] == "n/a" and rows["paper"]["seeds"] == "1"
    (got, _), (want, _) = (load_weights(x / "phantoms" / "paper" / "seed1" / "final.safetensors") for x in (b, a))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert "train: 100%" in (b / "phantoms" / "paper" / "seed1" / "train.log").read_text(), "the child's progress bar"
    scored = json.loads((a / "phantoms" / "eval" / "paper" / "seed1" / "metrics.json").read_text())["runs"]["seed1"]
    paper = rows["paper"]
    assert float(paper["SSIM"]) == scored["ssim/mean"] and float(paper["Dice"]) == scored["dice_present/mean"]


def test_only_a_user_variant_trains_and_the_table_keeps_every_finished_run(jobs2, tmp_path):
    b, preset, _ = jobs2
    before = _mtimes(b, ["paper/seed1"])
    wide = {"name": "wide", "description": "all four lambdas at 1", "overrides": ["flow.dt_weights=[1,1,1,1]"]}
    nodt = {"name": "nodt", "overrides": ["flow.dt_weights=[0,0,0,0]", "flow.reference=false"]}
    result = _ablation("--preset", str(preset), "--out", str(b), "--only", "wide",
                       "--variants", _variants_file(tmp_path / "v.yaml", [wide, nodt]))
    assert result.exit_code == 0, result.output
    assert _mtimes(b, ["paper/seed1"]) == before, "paper is reused"
    assert not (b / "phantoms" / "nodt").exists(), "only wide trains"
    rows = _rows(b)
    assert list(rows) == ["wide", "paper"], "the listed variants first, then the others found in OUT"
    assert rows["wide"]["overrides"] == "flow.dt_weights=[1,1,1,1]" and rows["wide"]["reference"] == "yes"
    assert "Reference: `wide`" in result.output, "without the preset's reference in the list, the first variant"
    assert load_config(b / "phantoms" / "wide" / "seed1" / "config.yaml").flow.dt_weights == [1, 1, 1, 1]


def test_convergence_frd_of_the_kept_checkpoints_is_cached(ci, tmp_path, monkeypatch):
    if importlib.util.find_spec("frd_score") is None:
        pytest.skip("FRD needs pip install -e '.[eval]'")
    out, _, _ = ci
    found = score.found_runs(out / "phantoms", ["nodt"])["nodt"][:1]
    cfg = found[0].cfg
    scorer = Scorer.on_split(cfg.data, "val", 0, spec=EvalSpec(split="val", seeds=[0]), metrics=("frd",),
                             device=torch.device("cpu"), workdir=tmp_path / "w")
    points = score.frd_points(scorer, found, 3, tmp_path / "eval", tmp_path)
    assert [s for s, _ in points["nodt/seed0"]] == [2, 4]
    monkeypatch.setattr(score, "kept_states_frd", lambda *a: pytest.fail("recomputed a cached curve"))
    assert score.frd_points(scorer, found, 3, tmp_path / "eval", tmp_path) == points


def test_seeds_trains_only_the_given_training_seeds(tmp_path):
    result = _ablation("--preset", "ci", "--only", "paper", "--seeds", "1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "phantoms" / "paper").glob("seed*")) == ["seed1"]
    assert not (tmp_path / "phantoms" / "nodt").exists()
    assert _rows(tmp_path)["paper"]["seeds"] == "1"


@pytest.mark.parametrize("args, message", [
    (["--only", "nosuch"], "--only: unknown variants ['nosuch']; choose from paper, nodt"),
    (["--set", "phantoms:train.nosuch=1"], "train.nosuch"),
    (["--jobs", "0"], "0 is not in the range x>=1"),
    (["--seeds", "7"], "--seeds: [7] not among the preset's training seeds 0, 1"),
    (["--seeds", "x"], "--seeds x: give comma-separated integers"),
    (["--preset", "nosuch"], "unknown preset 'nosuch': choose one of ci, cpu, gpu"),
])
def test_bad_requests_are_named_before_any_work(tmp_path, args, message):
    result = _ablation("--preset", "ci", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant, message", [
    ({"name": "bad", "overrides": ["flow.nosuch=1"]}, "variant bad: invalid configuration"),
    ({"name": "bad", "overrides": ["flow.dt_kind=l3"]}, "flow.dt_kind='l3' is not one of l2, cosine"),
    ({"name": "bad", "overrides": ["train.steps=9"]}, "the variants' budgets differ"),
    ({"name": "bad", "overrides": ["data.resolution=16"]}, "variant bad changes the data the variants are scored on"),
    ({"name": "eval"}, "none of teacher, segmenter, eval"),
    ({"description": "no name"}, "missing mandatory value: name"),
    ("nosuch", "invalid variants file"),
    ("nosuch", "unknown recipe 'nosuch'; choose from paper, nodt, bottleneck_cos"),
])
def test_a_bad_variant_is_named_before_any_work(tmp_path, variant, message):
    variants = _variants_file(tmp_path / "v.yaml", [PAPER, variant])
    result = _ablation("--preset", "ci", "--variants", variants, "--only", "paper", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"evaluation": {"split": "test"}}, "scored on the validation split (evaluation.split: val)"),
    ({"evaluation": {"seeds": [0]}}, "give the training seeds as seeds: [...], not evaluation.seeds"),
    ({"evaluation": {"split": "train"}}, "evaluation.split='train' is not one of val, test"),
])
def test_a_preset_that_would_score_elsewhere_is_refused(tmp_path, change, message):
    preset = yaml.safe_load((preset_folder("ablation") / "ci.yaml").read_text())
    for section, values in change.items():
        preset[section].update(values)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    result = _ablation("--preset", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output


def _plan_shipped(name: str, datasets: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> list:
    """The plans of paper, dt_low and dt_high in the shipped preset ``name`` on the shared ``datasets``."""
    from meddtfm.experiments.ablation.plan import plan_dataset
    from meddtfm.experiments.ablation.preset import load_preset

    from ..conftest import shared_dataset

    for dataset in datasets:
        shared_dataset("brats2021-4seq" if dataset == "brats2021" else dataset)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the presets' roots are relative to the checkout
    preset = load_preset(name)
    assert list(preset.datasets) == ["lgg", "isic2019", "brats2021"]
    names = [v.name for v in preset.variants]
    assert len(names) == len(set(names)) == 19
    plans = []
    for dataset in datasets:
        plan = plan_dataset(preset, preset.variants, ["paper", "dt_low", "dt_high"], dataset, [],
                            Path("/nonexistent/out"), None, None, True)
        assert plan.base.data.resolution == (128 if dataset == "brats2021" and name == "gpu" else 64)
        assert {k for k, _ in plan.runs} == {"paper", "dt_low", "dt_high"}
        weights = {v: plan.runs[(v, 0)].cfg.flow.dt_weights for v in ("paper", "dt_low", "dt_high")}
        assert weights == {"paper": [0.5] * 4, "dt_low": [0.1] * 4, "dt_high": [2.0] * 4}
        plans.append(plan)
    return plans


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_presets_plan_every_dataset_with_brats_among_them(name, monkeypatch):
    _plan_shipped(name, ("lgg", "isic2019"), monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_presets_plan_brats_on_all_twelve_cases(name, monkeypatch):
    brats = _plan_shipped(name, ("brats2021",), monkeypatch)[0].base.data
    assert brats.modalities == ["flair", "t1", "t1ce", "t2"], "the four sequences by default"
