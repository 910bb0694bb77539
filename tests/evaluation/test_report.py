import json
import math

import pytest

from meddtfm.evaluation.report import markdown_table, summarize, write_report


def test_mean_and_sample_std_over_runs():
    summary = summarize({"seed0": {"ssim/mean": 0.5, "fid/mean": 10.0},
                         "seed1": {"ssim/mean": 0.7, "fid/mean": 14.0},
                         "seed2": {"ssim/mean": 0.6}})
    assert summary["ssim/mean"] == pytest.approx({"mean": 0.6, "std": 0.1, "n": 3})
    assert summary["fid/mean"]["n"] == 2 and summary["fid/mean"]["std"] == pytest.approx(math.sqrt(8))
    assert list(summary) == ["ssim/mean", "fid/mean"]


def test_single_run_and_infinite_values():
    assert summarize({"a": {"x": 1.0}})["x"] == {"mean": 1.0, "std": None, "n": 1}
    psnr = summarize({"a": {"psnr/mean": math.inf}, "b": {"psnr/mean": 30.0}})["psnr/mean"]
    assert psnr["mean"] == math.inf and psnr["std"] is None


def test_table_has_reference_column():
    table = markdown_table(summarize({"s0": {"dice/ED": 0.5}, "s1": {"dice/ED": 0.7}}), {"dice/ED": 0.9}, runs=2)
    assert "over 2 runs" in table
    assert "| dice/ED | 0.6 ± 0.1414 | 0.9 |" in table


def test_write_report_json_has_no_bare_infinity(tmp_path):
    runs = {"seed0": {"psnr/mean": math.inf, "frd/mean": -math.inf}, "seed1": {"psnr/mean": 20.0, "frd/mean": 1.0}}
    text = write_report(tmp_path, runs, {"dice/mean": 0.8}, notes=["a note"], settings={"seeds": [0, 1]})
    raw = (tmp_path / "metrics.json").read_text()
    assert "Infinity" not in raw
    doc = json.loads(raw)
    assert doc["runs"]["seed0"]["psnr/mean"] == "inf" and doc["summary"]["frd/mean"]["mean"] == "-inf"
    assert doc["reference"] == {"dice/mean": 0.8} and doc["notes"] == ["a note"] and doc["settings"]["seeds"] == [0, 1]
    assert (tmp_path / "metrics.md").read_text() == text and "- a note" in text
    assert not list(tmp_path.glob(".*tmp*"))
