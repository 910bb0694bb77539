"""``meddtfm reproduce utility``: the ci preset end to end (teachers, generators, synthetic sets, U-Nets per arm,
scores on the real test split), what each arm trains on, reuse on a rerun, and errors named before any work."""
import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from meddtfm.cli.main import cli
from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.experiments.presets import preset_folder

ARMS = ["real", "real+1x", "real+2x", "synthetic", "low", "low+synthetic"]


def _utility(*args):
    return CliRunner().invoke(cli, ["reproduce", "utility", *args])


def _rows(out: Path) -> list[dict]:
    with open(out / "utility.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _kept(folder: Path) -> int:
    with open(folder / "manifest.csv", newline="") as fh:
        return sum(r["kept"] == "yes" for r in csv.DictReader(fh))


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("utility")
    result = _utility("--preset", "ci", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out / "phantoms", result


def test_every_arm_is_scored_on_the_real_test_split_over_two_seeds(ci):
    folder, result = ci
    rows = _rows(folder.parent)
    assert [r["arm"] for r in rows] == ARMS
    assert [r["generator"] for r in rows] == ["", "meddtfm", "meddtfm", "meddtfm", "", "meddtfm"]
    test = build_dataset(load_config(folder / "unet" / "real" / "seed0" / "config.yaml").data, "test")
    for r in rows:
        assert r["seeds"] == "0 1" and 0 <= float(r["dice"]) <= 1 and float(r["hd95"]) >= 0
        assert int(r["test_images"]) == len(test), "every U-Net scored on every real test image"
    real = float(rows[0]["dice"])
    assert float(rows[1]["delta_dice"]) == pytest.approx(float(rows[1]["dice"]) - real)
    assert float(rows[5]["delta_dice"]) == pytest.approx(float(rows[5]["dice"]) - float(rows[4]["dice"]))
    assert "| low+synthetic | meddtfm |" in result.output and (folder.parent / "utility.png").is_file()


def test_brats_classes_add_the_region_dice_of_each_arm(ci):
    folder, result = ci
    rows = _rows(folder.parent)
    assert "| Dice WT / TC / ET ↑ |" in result.output, "the phantoms have BraTS's classes NCR, ED, ET"
    for r in rows:
        assert all(0 <= float(r[f"dice_{k}"]) <= 1 for k in ("wt", "tc", "et")), r
    seeds = [json.loads((folder / "unet" / "real" / f"seed{k}" / "test_score.json").read_text())["scores"]
             for k in (0, 1)]
    assert float(rows[0]["dice_wt"]) == pytest.approx(sum(s["dice_wt/mean"] for s in seeds) / 2)
    assert float(rows[0]["dice_et_std"]) == pytest.approx(abs(seeds[0]["dice_et/mean"] - seeds[1]["dice_et/mean"])
                                                          / 2 ** 0.5)


def test_each_arm_trains_on_what_it_says(ci):
    folder, _ = ci
    data = {arm: load_config(folder / "unet" / arm / ("" if arm in ("real", "low") else "meddtfm") / "seed1"
                             / "config.yaml").data for arm in ARMS}
    syn = folder / "synthetic"
    assert (data["real"].train_fraction, data["real"].extra_train) == (1.0, [])
    assert data["real+1x"].extra_train == [str(syn / "meddtfm-1")]
    assert data["real+2x"].extra_train == [str(syn / "meddtfm-1"), str(syn / "meddtfm-2")]
    assert (data["synthetic"].train_fraction, data["synthetic"].extra_train) == (0.0, [str(syn / "meddtfm-1")])
    assert (data["low"].train_fraction, data["low+synthetic"].extra_train) == (0.5, [str(syn / "meddtfm-low")])
    real_masks = len(build_dataset(data["real"], "train").records)
    low_masks = len(build_dataset(data["low"], "train").records)
    assert _kept(syn / "meddtfm-1") == _kept(syn / "meddtfm-2") == real_masks, "1x: as many as the real masks"
    assert _kept(syn / "meddtfm-low") == 2 * low_masks
    low_gen = load_config(folder / "gen-low" / "meddtfm" / "config.yaml")
    assert low_gen.data.train_fraction == 0.5, "the low-data generator sees only the low-data subjects"
    assert low_gen.encoder.checkpoint == str(folder / "teacher-low" / "best.safetensors")
    assert load_config(folder / "teacher-low" / "config.yaml").data.train_fraction == 0.5
    with open(syn / "meddtfm-low" / "manifest.csv", newline="") as fh:
        sources = {r["subject"] for r in csv.DictReader(fh)}
    assert sources <= {r.subject_id for r in build_dataset(data["low"], "train").records}


def test_a_rerun_reuses_every_run_set_and_score(ci):
    folder, _ = ci
    files = sorted(folder.rglob("*.safetensors")) + sorted(folder.rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in files}
    table = (folder.parent / "utility.csv").read_text()
    result = _utility("--preset", "ci", "--out", str(folder.parent))
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert (folder.parent / "utility.csv").read_text() == table
    score = json.loads((folder / "unet" / "real" / "seed0" / "test_score.json").read_text())
    assert score["key"]["split"] == "test"


@pytest.mark.parametrize("args, message", [
    (["--generators", "nosuch"], "--generators nosuch: choose among meddtfm"),
    (["--datasets", "lgg"], "unknown datasets ['lgg'] for preset ci"),
    (["--set", "data.train_fraction=2"], "data.train_fraction=2.0 must lie in"),
])
def test_bad_requests_are_named_before_any_work(tmp_path, args, message):
    result = _utility("--preset", "ci", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_preset_scored_on_validation_is_refused(tmp_path):
    preset = yaml.safe_load((preset_folder("utility") / "ci.yaml").read_text())
    preset["evaluation"]["split"] = "val"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    result = _utility("--preset", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "reports the real test split" in result.output, result.output


def _shipped(name: str, datasets: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """The plans of the shipped preset ``name`` on the shared ``datasets`` (comma-separated)."""
    from meddtfm.experiments.utility import Utility

    from ..conftest import shared_dataset

    for dataset in datasets.split(","):
        shared_dataset("brats2021-4seq" if dataset == "brats2021" else dataset)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the presets' roots are relative to the checkout
    plans = Utility.prepare(name, "/nonexistent/out", datasets, None, [], 1).plans
    assert [p.name for p in plans] == datasets.split(",")
    for plan in plans:
        assert [g.out.parent.name + "/" + g.out.name for g in plan.generators] == [
            f"{where}/{g}" for g in ("meddtfm", "nodt", "pix2pixhd") for where in ("gen", "gen-low")]
        assert sum(len(a.runs) for a in plan.arms) == 2 * 3 + 4 * 3 * 3, "2 real-only arms, 4 arms x 3 generators"
        assert {r.cfg.train.steps for a in plan.arms for r in a.runs.values()} == {plan.data.train.steps}
    return plans


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_presets_resolve_on_the_shared_data(name, monkeypatch):
    _shipped(name, "lgg,isic2019", monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_presets_resolve_on_all_twelve_brats_cases(name, monkeypatch):
    brats = _shipped(name, "brats2021", monkeypatch)[0].data.data
    assert brats.modalities == ["flair", "t1", "t1ce", "t2"] and brats.resolution == (128 if name == "gpu" else 64)
