"""``meddtfm reproduce fewstep``: the ci preset end to end (segmenters, base flow, GAN, one student per method,
every row scored on the same test samples, throughput), what each student is, reuse of runs and scores on a
rerun, a student distilled in a child process, and bad requests named before any work."""
import csv
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from meddtfm.checkpoint import load_weights, weights_config
from meddtfm.cli.main import cli
from meddtfm.config import load_config
from meddtfm.experiments.fewstep import FewStep
from meddtfm.experiments.presets import preset_folder
from meddtfm.training.few_step import recorded_sections

METHODS = ["adversarial", "meanflow", "reflow"]


def _fewstep(*args):
    return CliRunner().invoke(cli, ["reproduce", "fewstep", *args])


def _rows(out: Path) -> list[dict]:
    with open(out / "fewstep.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("fewstep")
    result = _fewstep("--preset", "ci", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out / "phantoms", result


def test_every_row_is_scored_with_its_own_sampler(ci):
    folder, result = ci
    rows = _rows(folder.parent)
    assert [(r["generator"], r["nfe"], r["sampler"]) for r in rows] == [
        ("Med-DT-FM", "1", "euler"), ("Med-DT-FM", "2", "heun"), ("Med-DT-FM", "4", "heun"),
        ("pix2pixHD", "1", "one pass"),
        *((f"{m} student", k, "own steps") for m in METHODS for k in ("1", "2"))]
    base, gan = rows[2], rows[3]  # the base flow at its most NFE; the GAN
    for r in rows:
        assert 0 <= float(r["Dice"]) <= 1 and float(r["FRD"]) > 0 and float(r["images_per_second"]) > 0
        assert float(r["frd_vs_base"]) == pytest.approx(float(r["FRD"]) / float(base["FRD"]))
        assert float(r["dice_vs_base"]) == pytest.approx(float(r["Dice"]) - float(base["Dice"]))
        assert float(r["speed_vs_gan"]) == pytest.approx(float(r["images_per_second"])
                                                         / float(gan["images_per_second"]))
    assert gan["FRD_std"] == "0.0", "a GAN maps a mask to one image"
    for key in ("base-euler-1", "base-heun-4", "pix2pixhd", "reflow-2"):
        assert (folder / "eval" / key / "metrics.json").is_file()
    assert "| reflow student | 2 | own steps |" in result.output


def test_each_student_is_its_method_distilled_from_the_base_flow(ci):
    folder, _ = ci
    plan = FewStep.prepare("ci", folder.parent, None, None, [], None, [], []).plans[0]
    rows = {(r["generator"], r["nfe"]): r for r in _rows(folder.parent)}
    for method in METHODS:
        cfg = load_config(folder / method / "config.yaml")
        assert cfg == plan.students[method].cfg, "distill-steps trained the planned config"
        meta = load_weights(folder / method / "final.safetensors")[1]
        assert (meta["few_step"]["method"], meta["few_step"]["steps"]) == (method, [1, 2])
        assert cfg.few_step.checkpoint == str(folder / "base" / "final.safetensors")
        assert (cfg.generator, cfg.flow) == recorded_sections(weights_config(folder / "base" / "final.safetensors"))
        assert (cfg.train.steps, cfg.data.augment) == (2, False)
        row = rows[(f"{method} student", "1")]
        assert int(row["training_images"]) == 2 * 4 and float(row["budget_fraction"]) == pytest.approx(8 / 16)


def test_a_rerun_reuses_runs_and_scores_and_a_child_process_distils_a_missing_student(ci):
    folder, _ = ci
    first = {(r["generator"], r["nfe"]): r["FRD"] for r in _rows(folder.parent)}
    shutil.rmtree(folder / "reflow")
    kept = sorted(p for p in folder.rglob("final.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in kept}
    scores = {p.parent.name: p.stat().st_mtime_ns for p in (folder / "eval").glob("*/metrics.json")}
    result = _fewstep("--preset", "ci", "--out", str(folder.parent), "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    rescored = {k for k, t in scores.items() if (folder / "eval" / k / "metrics.json").stat().st_mtime_ns != t}
    assert rescored == {"reflow-1", "reflow-2"}, "only the new student's rows are scored again"
    again = {(r["generator"], r["nfe"]): r["FRD"] for r in _rows(folder.parent)}
    assert {k: v for k, v in again.items() if k[0] != "reflow student"} == {
        k: v for k, v in first.items() if k[0] != "reflow student"}
    assert "distilled for 2 steps" in (folder / "reflow" / "train.log").read_text(), "by the child distill-steps"
    FewStep.prepare("ci", folder.parent, None, None, [], None, [], [])  # its saved config is the planned one


@pytest.mark.parametrize("args, message", [
    (["--methods", "nosuch"], "--methods nosuch: choose among adversarial"),
    (["--datasets", "lgg"], "unknown datasets ['lgg'] for preset ci"),
])
def test_bad_requests_are_named_before_any_work(tmp_path, args, message):
    result = _fewstep("--preset", "ci", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value, message", [
    ("distill", ["generator.base_channels=16"], "change the base flow's generator section"),
    ("methods", ["adversarial", "nosuch"], "choose distinct ones among"),
    ("base", [{"nfe": 4, "solver": "nosuch"}], "list the base flow's samplers"),
    ("per_method", {"medgan": ["gan.ndf=4"]}, "per_method: ['medgan'] are not among"),
])
def test_a_bad_preset_is_refused_with_its_reason(tmp_path, key, value, message):
    preset = yaml.safe_load((preset_folder("fewstep") / "ci.yaml").read_text())
    preset[key] = value
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    result = _fewstep("--preset", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_presets_resolve_on_the_shared_data(name, monkeypatch):
    from ..conftest import shared_dataset

    shared_dataset("lgg")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the presets' roots are relative to the checkout
    study = FewStep.prepare(name, "/nonexistent/out", "lgg", None, [], None, [], [])
    plan = study.plans[0]
    assert list(plan.students) == METHODS and plan.gan is not None
    base_images = plan.base.cfg.train.steps * plan.base.cfg.data.batch_size
    for run in plan.students.values():
        assert run.cfg.train.steps * run.cfg.data.batch_size <= 0.25 * base_images, "the issue's 25% budget"
