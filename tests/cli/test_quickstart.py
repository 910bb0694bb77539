"""The README's first command, on configs/quickstart.yaml with fewer steps: teacher, Med-DT-FM, both sampling modes."""
import csv
from pathlib import Path

from click.testing import CliRunner

from meddtfm.cli.main import cli

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")


def _run(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output


def test_quickstart_chain_runs_end_to_end(tmp_path):
    few = ["--set", "train.steps=3", "--set", "train.val_every=3", "--set", "data.num_workers=0"]
    teacher, model = tmp_path / "teacher", tmp_path / "meddtfm"
    _run("pretrain-encoder", "--config", CONFIG, *few, "--out", str(teacher))
    _run("train", "--config", CONFIG, *few, "--set", f"encoder.checkpoint={teacher / 'best.safetensors'}",
         "--out", str(model))
    weights = str(model / "final.safetensors")
    _run("sample", "--checkpoint", weights, "--dataset", "test", "--limit", "4", "--out", str(tmp_path / "noise"))
    _run("sample", "--checkpoint", weights, "--dataset", "test", "--limit", "4", "--mode", "reference",
         "--dataset-reference", "healthy", "--out", str(tmp_path / "reference"))
    for mode in ("noise", "reference"):
        assert (tmp_path / mode / "grid.png").stat().st_size > 0
        with open(tmp_path / mode / "manifest.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 4 and all(r["mode"] == mode for r in rows)
    assert all(0.0 < float(r["ssim_outside_lesion_unblended"]) <= 1.0 + 1e-5 for r in rows), rows
