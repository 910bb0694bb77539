import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from meddtfm.cli.main import cli
from meddtfm.data.splits import assign_splits

from ..data.test_isic import _image, _write_layout


def test_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "data" in result.output


def test_inspect_phantoms_writes_summary_and_grid(tmp_path):
    out = tmp_path / "inspect"
    result = CliRunner().invoke(cli, [
        "data", "inspect", "--set", "data.phantom_count=20", "--set", "data.resolution=32",
        "--set", "data.num_workers=0", "--set", "data.test_fraction=0.2", "--grid", "4", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    counts = {name: summary["splits"][name]["samples"] for name in ("train", "val", "test")}
    assigned = assign_splits((f"phantom_{i:05d}" for i in range(20)), 0.1, 0.2, seed=0)
    assert counts == {name: list(assigned.values()).count(name) for name in counts} and summary["samples_read"] == 20
    assert summary["class_frequency"]["ED"]["samples_with_class"] == 20
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["resolution"] == 32
    grid = Image.open(out / "grid.png")
    assert grid.size == (4 * 2 * 34 + 2, 34 + 2)


def test_bad_override_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["data", "inspect", "--set", "data.nme=x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nme" in result.output


def test_missing_root_is_explained(tmp_path):
    result = CliRunner().invoke(cli, ["data", "inspect", "--set", "data.name=isic2019", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "data.root is not set" in result.output


@pytest.mark.parametrize("command", [["data", "inspect"], ["pretrain-encoder"], ["train"], ["sample"], ["evaluate"],
                                     ["reproduce", "table1"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "--out" in result.output, result.output


def test_inspect_counts_scan_and_load_skips(tmp_path):
    """A missing CSV row (found at scan) and a corrupt JPEG (found when read, in a worker) are both counted."""
    root = _write_layout(tmp_path / "isic", n=6)
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    csv.write_text("".join(line for line in csv.read_text().splitlines(keepends=True) if "ISIC_0000002" not in line))
    _image(root, 4).write_bytes(b"not a jpeg" * 30)
    out = tmp_path / "inspect"
    result = CliRunner().invoke(cli, ["data", "inspect", "--set", "data.name=isic2019", "--set", f"data.root={root}",
                                      "--set", "data.resolution=32", "--set", "data.num_workers=1",
                                      "--set", "data.on_bad_sample=skip", "--grid", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    assert summary["skipped"] == 2 and summary["samples_read"] == 4, summary
    assert [e.split(": ")[0] for e in summary["skipped_examples"]] == [str(_image(root, 2)), str(_image(root, 4))]
    assert summary["native_sizes"] == {"30x40": 4}


@pytest.mark.parametrize("command", [["data", "inspect"], ["pretrain-encoder", "--set", "train.steps=2",
                                                           "--set", "encoder.widths=[4,8,8,8,8]",
                                                           "--set", "data.batch_size=2"]])
def test_a_bad_file_read_by_a_worker_is_named_without_traceback(tmp_path, command):
    root = _write_layout(tmp_path / "isic", n=6)
    _image(root, 1).write_bytes(_image(root, 1).read_bytes()[:200])
    result = CliRunner().invoke(cli, [*command, "--set", "data.name=isic2019", "--set", f"data.root={root}",
                                      "--set", "data.resolution=32", "--set", "data.num_workers=1",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert f"Error: {_image(root, 1)}: cannot decode image" in result.output
    assert "Traceback" not in result.output


def test_inspect_brats_reports_native_intensities_and_slices_per_class(brats_4seq_two, shared_cache, tmp_path):
    out = tmp_path / "inspect"
    result = CliRunner().invoke(cli, ["data", "inspect", "--config", "brats2021",
                                      "--set", f"data.root={brats_4seq_two}", "--set", "data.resolution=32",
                                      "--set", "data.num_workers=0", "--limit", "4", "--grid", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    assert summary["channels"] == ["flair", "t1", "t1ce", "t2"] and summary["classes"] == ["NCR", "ED", "ET"]
    volumes = summary["volumes"]
    assert volumes["cases"] == 2 and list(volumes["native_intensity"]) == summary["channels"]
    for sequence, facts in volumes["native_intensity"].items():
        low, high = facts["p0.5_over_cases"], facts["p99.5_over_cases"]
        assert facts["dtype"] == "int16" and 0 <= facts["min"] <= low[0] <= low[1] < high[0] <= high[1] <= facts["max"]
    slices = volumes["slices_per_class"]
    assert slices["slices"] == 2 * 155 and slices["tumour"] + slices["healthy"] <= slices["slices"]
    assert all(0 < slices[c] <= slices["tumour"] for c in ("NCR", "ED", "ET"))
    per_split = [summary["splits"][s]["slices_per_class"] for s in ("train", "val", "test")]
    assert {k: sum(p[k] for p in per_split) for k in slices} == slices
    assert sum(summary["splits"][s]["samples"] for s in ("train", "val", "test")) == slices["tumour"]
