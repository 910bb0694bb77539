import yaml
from click.testing import CliRunner
from PIL import Image

from meddtfm.cli.main import cli


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
    assert summary["splits"]["train"]["samples"] == 14 and summary["samples_read"] == 20
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
