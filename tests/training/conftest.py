"""Tiny Med-DT-FM configs and a tiny U-KAN teacher shared by the flow-matching tests."""
from __future__ import annotations

import csv
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from meddtfm.cli.main import cli

DATA = ["data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0",
        "train.warmup_steps=1", "train.log_every=1", "train.val_every=4", "train.checkpoint_every=2",
        "train.sample_every=100"]
GEN = ["generator.base_channels=8", "generator.cond_channels=[8,8,8,8]", "generator.text_dim=16",
       "generator.time_dim=16", "generator.num_res_blocks=1", "generator.attention_at_bottleneck=false",
       "generator.dropout=0.0", "flow.disc_channels=8", "flow.disc_layers=2", "flow.val_batches=1"]


def _sets(*groups: list[str]) -> list[str]:
    """``--set`` arguments for every override of ``groups``."""
    return [a for group in groups for o in group for a in ("--set", o)]


def _losses(out: Path, name: str = "loss/fm") -> dict[int, float]:
    """Step -> value of metric ``name`` in ``out/metrics.csv``."""
    with open(out / "metrics.csv") as fh:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(fh) if r["name"] == name}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A U-KAN teacher trained for 2 steps on the tiny phantoms: ``encoder.checkpoint`` for distillation."""
    out = tmp_path_factory.mktemp("teacher")
    sets = _sets(DATA, ["encoder.widths=[4,8,16,24,32]", "train.steps=2"])
    result = CliRunner().invoke(cli, ["pretrain-encoder", *sets, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return str(out / "best.safetensors")
