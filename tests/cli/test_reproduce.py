"""``meddtfm reproduce table1``: the ci preset end to end, reuse of finished runs, and errors named before training."""
import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageFont

from meddtfm.checkpoint import load_weights
from meddtfm.cli.main import cli
from meddtfm.evaluation.report import format_number
from meddtfm.experiments.convergence import state_as_weights
from meddtfm.experiments.figures import LABEL_H, MIN_TILE, PAD, grid_size, row_label_width
from meddtfm.experiments.table1.methods import METHODS
from meddtfm.experiments.table1.plan import plan_dataset
from meddtfm.experiments.table1.preset import load_preset, preset_names

LABELS = ["pix2pixHD", "MedGAN", "Ours (no DT)", "Med-DT-FM"]
RUNS = ["teacher", "segmenter", "pix2pixhd", "medgan", "nodt", "meddtfm"]
SEQUENCES = ["FLAIR", "T1", "T1ce", "T2"]  # the ci phantoms: four sequences, classes NCR, ED, ET


def _table1(*args):
    return CliRunner().invoke(cli, ["reproduce", "table1", *args])


def _rows(out: Path) -> list[dict]:
    with open(out / "table1.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1")
    result = _table1("--preset", "ci", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result


def test_ci_table_has_the_four_methods_with_measured_numbers(ci):
    out, result = ci
    rows = _rows(out)
    assert [(r["dataset"], r["method"]) for r in rows] == [("phantoms", m) for m in LABELS]
    has_frd = importlib.util.find_spec("frd_score") is not None
    for r in rows:
        ssim, psnr, dice = float(r["SSIM"]), float(r["PSNR"]), float(r["Dice"])
        assert all(math.isfinite(x) for x in (ssim, psnr, dice)) and -1 <= ssim <= 1 and 0 <= dice <= 1, r
        assert (r["steps"], r["images_seen"]) == ("8", "32"), "equal budgets: 8 steps x batch 4 each"
        assert r["FID"] == "n/a" and (r["FRD"] != "n/a") == has_frd
        ssim4, psnr4 = float(r["SSIM avg-4"]), float(r["PSNR avg-4"])
        assert math.isfinite(ssim4) and math.isfinite(psnr4), r
        if r["method"] in ("pix2pixHD", "MedGAN"):  # one image per mask: the average of 4 draws is that image
            assert (ssim4, psnr4) == (pytest.approx(ssim), pytest.approx(psnr))
        else:
            assert ssim4 != pytest.approx(ssim), "the flows' average of 4 draws is another image than one draw"
    md = (out / "table1.md").read_text()
    assert md in result.output, "the table is printed"
    assert "32 images seen = 8 steps x batch 4 x 1 accumulation" in md and "no wall-clock cap" in md
    for r in rows:
        line = next(x for x in md.splitlines() if x.startswith(f"| {r['method']} |"))
        assert f"| {format_number(float(r['SSIM']))} |" in line and "n/a (needs --inception-weights FILE)" in line
    assert "Dice (lesion-present classes) of the same U-Net on the real test images" in md and "MS-SSIM at 32 px" in md
    assert "4 test images, 4 of them paired" in md
    assert "BraTS regions of the same U-Net on the real test images (the ceiling): Dice WT" in md
    assert "Dice WT as a fraction of the ceiling: pix2pixHD" in md
    # The table holds what `meddtfm evaluate` wrote for each method (same code, same samples).
    for m, r in zip(METHODS, rows):
        doc = json.loads((out / "phantoms" / "eval" / m.key / "metrics.json").read_text())
        assert doc["summary"]["ssim/mean"]["mean"] == pytest.approx(float(r["SSIM"]))
        assert doc["settings"]["samples"] == 4 and doc["settings"]["segmenter"].endswith("segmenter/best.safetensors")
        assert doc["reference"]["dice_wt/mean"] == pytest.approx(float(md.split("(the ceiling): Dice WT ")[1][:6]),
                                                                 rel=1e-3)


def test_ci_table_has_the_brats_regions_and_each_sequences_frd_and_ssim(ci):
    out, _ = ci
    has_frd = importlib.util.find_spec("frd_score") is not None
    for r in _rows(out):
        regions = [float(r[f"{m} {region}"]) for m in ("Dice", "HD95") for region in ("WT", "TC", "ET")]
        assert all(0 <= d <= 1 for d in regions[:3] if math.isfinite(d)) and math.isfinite(regions[0]), r
        assert all(0 <= h <= math.hypot(32, 32) for h in regions[3:] if math.isfinite(h)), r
        ssim = [float(r[f"SSIM {s}"]) for s in SEQUENCES]
        assert float(r["SSIM"]) == pytest.approx(sum(ssim) / 4), "SSIM is the mean over the sequences"
        if has_frd:
            assert float(r["FRD"]) == pytest.approx(sum(float(r[f"FRD {s}"]) for s in SEQUENCES) / 4)


def test_no_dt_is_the_one_switch_and_fig2_and_convergence_are_drawn(ci):
    out, _ = ci
    logged = {m: {row["name"] for row in csv.DictReader(open(out / "phantoms" / m / "metrics.csv"))}
              for m in ("nodt", "meddtfm")}
    assert "loss/dt" in logged["meddtfm"] and "loss/dt" not in logged["nodt"]
    _, nodt = load_weights(out / "phantoms" / "nodt" / "final.safetensors")
    _, ours = load_weights(out / "phantoms" / "meddtfm" / "final.safetensors")
    assert nodt["teacher"] is None and nodt["ref_channels"] == 0, "no DT means no teacher at all"
    assert ours["teacher"] and ours["ref_channels"] > 0
    left = row_label_width(SEQUENCES, ImageFont.load_default())  # the sequences' names left of the rows
    with Image.open(out / "fig2.png") as img:  # 4 columns; 2 cases x 4 sequences = 8 rows; 1 group
        expected = (left + 4 * (MIN_TILE + PAD) + PAD, 2 * LABEL_H + 8 * (MIN_TILE + PAD) + PAD)
        assert img.size == grid_size(4, 8, 1, MIN_TILE, left) == expected
        pixels = np.asarray(img.convert("RGB"))

    def tile(row: int, column: int) -> np.ndarray:
        y, x = 2 * LABEL_H + PAD + row * (MIN_TILE + PAD), left + PAD + column * (MIN_TILE + PAD)
        return pixels[y:y + MIN_TILE, x:x + MIN_TILE]

    tiles = [tile(0, j) for j in range(4)]
    assert all(not np.array_equal(a, b) for i, a in enumerate(tiles) for b in tiles[i + 1:]), "four distinct columns"
    assert np.array_equal(tile(0, 0), tile(3, 0)) and not np.array_equal(tile(0, 0), tile(4, 0)), "a mask per case"
    assert not np.array_equal(tile(0, 3), tile(1, 3)), "the rows of a case show its sequences"
    with open(out / "convergence.csv", newline="") as fh:
        curves = list(csv.DictReader(fh))
    assert {(r["method"], int(r["step"])) for r in curves} == {(m, s) for m in ("Med-DT-FM", "Ours (no DT)")
                                                                 for s in (2, 4, 6, 8)}
    assert all(r["metric"] == "validation L_FM (fixed noise and t)" for r in curves)
    with Image.open(out / "convergence.png") as img:
        assert img.size == (720, 440)


def test_checkpoint_state_converts_to_the_final_weights(ci, tmp_path):
    run = ci[0] / "phantoms" / "meddtfm"
    step, path = state_as_weights(run / "checkpoints" / "step_0000008.pt", run / "final.safetensors", tmp_path / "w.st")
    (got, meta), (want, want_meta) = load_weights(path), load_weights(run / "final.safetensors")
    assert step == 8 and meta == want_meta and got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_state_without_an_ema_converts_to_its_raw_generator(ci, tmp_path):
    run = ci[0] / "phantoms" / "meddtfm"
    state = torch.load(run / "checkpoints" / "step_0000008.pt", map_location="cpu", weights_only=True)
    del state["ema"]
    torch.save(state, tmp_path / "raw.pt")
    _, path = state_as_weights(tmp_path / "raw.pt", run / "final.safetensors", tmp_path / "w.st")
    got, raw = load_weights(path)[0], state["nets"]["generator"]
    assert got.keys() == raw.keys() and all(torch.equal(got[k], raw[k]) for k in raw)


def test_rerun_reuses_every_run_and_scores_the_same(ci):
    out, _ = ci
    before = {r: (out / "phantoms" / r / "final.safetensors").stat().st_mtime_ns for r in RUNS}
    table = (out / "table1.csv").read_text()
    result = _table1("--preset", "ci", "--datasets", "phantoms", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert {r: (out / "phantoms" / r / "final.safetensors").stat().st_mtime_ns for r in RUNS} == before
    assert (out / "table1.csv").read_text() == table, "deterministic scoring of the same weights"


def test_jobs_2_trains_each_run_in_a_child_to_the_same_weights_and_table(ci, tmp_path):
    out, _ = ci
    result = _table1("--preset", "ci", "--jobs", "2", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    for run in RUNS:
        (got, _), (want, _) = (load_weights(x / "phantoms" / run / "final.safetensors") for x in (tmp_path, out))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), run
        assert "100%" in (tmp_path / "phantoms" / run / "train.log").read_text(), "the child's progress bar"
    timeless = [[{k: v for k, v in r.items() if "seconds" not in k} for r in _rows(x)] for x in (tmp_path, out)]
    assert timeless[0] == timeless[1], "the same scores; only the training seconds differ"


def test_rerun_with_other_settings_stops_before_training(ci):
    result = _table1("--preset", "ci", "--out", str(ci[0]), "--set", "train.lr=0.5")
    assert result.exit_code == 2 and "trained with other settings (train.lr)" in result.output


@pytest.mark.parametrize("args, message", [
    (["--preset", "nosuch"], "unknown preset 'nosuch': choose one of ci, cpu, paper"),
    (["--preset", "ci", "--jobs", "0"], "0 is not in the range x>=1"),
    (["--preset", "ci", "--datasets", "lgg"], "unknown datasets ['lgg'] for preset ci: choose from phantoms"),
    (["--preset", "ci", "--set", "lgg:data.root=/x"], "dataset 'lgg' is not run"),
    (["--preset", "ci", "--set", "train.nosuch=1"], "train.nosuch"),
    (["--preset", "ci", "--set", "flow.dt_weights=[0,0,0,0]"], "Med-DT-FM needs flow.dt_weights > 0"),
    (["--preset", "cpu", "--datasets", "lgg", "--set", "lgg:data.root=/nonexistent"], "data.root=/nonexistent is not"),
])
def test_bad_requests_are_named_before_any_work(tmp_path, args, message):
    result = _table1(*args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_gives_equal_budgets(tmp_path, name):
    preset = load_preset(name)
    for dataset in preset.datasets:
        plan = plan_dataset(preset, dataset, [f"data.root={tmp_path}"], 3, tmp_path, None, None, True)
        cfgs = [r.cfg for r in plan.methods.values()]
        assert {c.train.steps * c.data.batch_size for c in cfgs} == {preset.budget.images}
        assert {c.seed for c in cfgs} == {3} and plan.methods["nodt"].cfg.flow.dt_weights == [0, 0, 0, 0]
        teacher = tmp_path / dataset / "teacher" / "best.safetensors"
        assert plan.methods["meddtfm"].cfg.encoder.checkpoint == str(teacher)
