"""``meddtfm train`` refuses a U-KAN teacher that saw another split of the data, or images of another size."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from meddtfm.cli.main import cli
from meddtfm.config import DataConfig, load_config
from meddtfm.data import build_dataset

from ..evaluation.conftest import segmenter_checkpoint

DATA = DataConfig(phantom_count=8, resolution=32, val_fraction=0.25, test_fraction=0.25, num_workers=0,
                  batch_size=2)
RUN = ["data.phantom_count=8", "data.resolution=32", "data.val_fraction=0.25", "data.test_fraction=0.25",
       "data.num_workers=0", "data.batch_size=2", "train.steps=1", "train.warmup_steps=1", "train.val_every=100",
       "train.sample_every=100", "generator.base_channels=8", "generator.cond_channels=[8,8,8,8]",
       "generator.text_dim=16", "generator.time_dim=16", "generator.num_res_blocks=1",
       "generator.attention_at_bottleneck=false", "flow.adv_weight=0", "flow.val_batches=1"]


def _train(tmp_path: Path, teacher: Path, *extra: str):
    args = [a for o in (*RUN, f"encoder.checkpoint={teacher}", *extra) for a in ("--set", o)]
    return CliRunner().invoke(cli, ["train", *args, "--out", str(tmp_path / "run")])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init U-KAN recorded as trained on ``DATA``."""
    channels = build_dataset(DATA, "train").channel_names
    return segmenter_checkpoint(tmp_path_factory.mktemp("teacher") / "ukan.safetensors", channels,
                                ("NCR", "ED", "ET"), model="ukan", data=DATA)


@pytest.mark.parametrize("override, message", [
    ("data.split_seed=2", "data.split_seed is 0 in the teacher {} but 2 in this run's data"),
    ("data.val_fraction=0.3", "data.val_fraction is 0.25 in the teacher {} but 0.3 in this run's data"),
    ("data.test_fraction=0.1", "data.test_fraction is 0.25 in the teacher {} but 0.1 in this run's data"),
    ("data.resolution=16", "data.resolution is 32 in the teacher {} but 16 in this run's data"),
])
def test_a_teacher_of_another_split_or_size_is_refused(tmp_path: Path, teacher: Path, override: str,
                                                       message: str) -> None:
    result = _train(tmp_path, teacher, override)
    assert result.exit_code == 2 and "Error: " + message.format(teacher) in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / "final.safetensors").exists()


def test_a_teacher_of_the_same_split_trains(tmp_path: Path, teacher: Path) -> None:
    result = _train(tmp_path, teacher, "data.root=/data/moved")  # the root may move: it decides no split
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_train_recipe_applies_before_set_and_is_recorded(tmp_path: Path) -> None:
    args = [a for o in (*RUN, "flow.reference=true", "flow.reference_source=none") for a in ("--set", o)]
    result = CliRunner().invoke(cli, ["train", "--recipe", "nodt", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    flow = load_config(tmp_path / "run" / "config.yaml").flow
    assert flow.dt_weights == [0, 0, 0, 0] and flow.reference, "the recipe's L_DT weights, --set's reference"
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_train_refuses_an_unknown_recipe(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--recipe", "nosuch", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Invalid value for '--recipe': 'nosuch' is not one of 'paper', 'nodt'" \
        in result.output, result.output
    assert not (tmp_path / "run").exists()
