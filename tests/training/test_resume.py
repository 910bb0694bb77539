"""Resuming in the same --out: settings that change the run stop with a clean error, the others pass."""
import logging

import pytest
import yaml
from click.testing import CliRunner

from meddtfm.cli.main import cli
from meddtfm.config import Config, to_dict
from meddtfm.training.resume import ABSENT, MAY_CHANGE_ON_RESUME, config_changes, flatten

from .conftest import DATA, GEN, _sets

UKAN = [*DATA, "encoder.widths=[4,8,16,24,32]", "train.lr=0.01"]


def _pretrain(out, *extra, flags=()):
    return CliRunner().invoke(cli, ["pretrain-encoder", *_sets(UKAN, extra), *flags, "--out", str(out)])


def test_changed_lr_stops_naming_the_key_and_both_values(tmp_path):
    assert _pretrain(tmp_path, "train.steps=2").exit_code == 0
    result = _pretrain(tmp_path, "train.steps=2", "train.lr=0.5")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Error: cannot resume from" in result.output and "step_0000002.pt" in result.output
    assert "train.lr: 0.01 -> 0.5" in result.output and "--fresh" in result.output
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["lr"] == 0.01, \
        "OUT/config.yaml still describes OUT's checkpoints"
    fresh = _pretrain(tmp_path, "train.steps=2", "train.lr=0.5", flags=["--fresh"])
    assert fresh.exit_code == 0, fresh.output


def test_more_steps_and_other_bookkeeping_resume(tmp_path, caplog):
    assert _pretrain(tmp_path, "train.steps=2").exit_code == 0
    caplog.set_level(logging.INFO, logger="meddtfm.training.loop")
    result = _pretrain(tmp_path, "train.steps=3", "train.log_every=3", "train.checkpoint_every=5")
    assert result.exit_code == 0, result.output
    assert "trained ukan for 3 steps" in result.output
    assert any("resumed from" in r.getMessage() and "step_0000002.pt" in r.getMessage() for r in caplog.records)


def test_turning_distillation_on_over_a_no_dt_run_is_a_clean_error(tmp_path, teacher):
    def run(*extra):
        sets = _sets(DATA, GEN, ["train.steps=2", f"encoder.checkpoint={teacher}", "flow.adv_weight=0", *extra])
        return CliRunner().invoke(cli, ["train", *sets, "--out", str(tmp_path)])

    assert run("flow.dt_weights=[0,0,0,0]").exit_code == 0
    result = run("flow.dt_weights=[0.5,0.5,0.5,0.5]", "train.steps=3")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "flow.dt_weights: [0.0, 0.0, 0.0, 0.0] -> [0.5, 0.5, 0.5, 0.5]" in result.output
    assert "train.steps:" not in result.output, "train.steps may change"


def test_flatten_keeps_lists_as_values():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}


def test_config_changes_lists_differences_sorted_and_skips_allowed_keys():
    old = {"train": {"lr": 0.1, "steps": 5, "betas": [0.5, 0.9]}, "data": {"root": "/a", "gone": 1}}
    new = {"train": {"lr": 0.2, "steps": 9, "betas": [0.5, 0.99]}, "data": {"root": "/b"}, "flow": {"new": None}}
    assert config_changes(old, new, ["train.steps", "data.root"]) == [
        ("data.gone", 1, ABSENT), ("flow.new", ABSENT, None), ("train.betas", [0.5, 0.9], [0.5, 0.99]),
        ("train.lr", 0.1, 0.2)]
    assert config_changes(old, old) == []
    assert repr(ABSENT) == "<absent>"


def test_a_key_added_since_at_its_default_is_no_change():
    saved = {"train": {"lr": 0.1}}
    defaults = {"train": {"lr": 0.2}, "flow": {"x1_loss": "none", "r1_gamma": 0.0}}
    assert config_changes(saved, {"train": {"lr": 0.1}, "flow": {"x1_loss": "none", "r1_gamma": 0.0}},
                          defaults=defaults) == []
    assert config_changes(saved, {"train": {"lr": 0.1}, "flow": {"x1_loss": "l1", "r1_gamma": 0.0}},
                          defaults=defaults) == [("flow.x1_loss", ABSENT, "l1")], "a new switch turned on is a change"
    assert config_changes({"train": {"lr": 0.1, "gone": 1}}, {"train": {"lr": 0.1}}, defaults=defaults) == [
        ("train.gone", 1, ABSENT)], "a key the code no longer has is still a change"


@pytest.mark.parametrize("key", MAY_CHANGE_ON_RESUME)
def test_every_key_that_may_change_exists(key):
    assert key in flatten(to_dict(Config()))


def test_the_few_step_section_counts_only_for_a_distill_steps_run():
    train_old = {"train": {"lr": 0.1}, "few_step": {"method": "adversarial", "checkpoint": None}}
    train_new = {"train": {"lr": 0.1}, "few_step": {"method": "meanflow", "checkpoint": None}}
    assert config_changes(train_old, train_new) == [], "train and pretrain-encoder never read few_step"
    distill_old = {"few_step": {"method": "adversarial", "checkpoint": "base.safetensors"}}
    distill_new = {"few_step": {"method": "meanflow", "checkpoint": "base.safetensors"}}
    assert config_changes(distill_old, distill_new) == [("few_step.method", "adversarial", "meanflow")]
    assert config_changes({"few_step": {"method": "meanflow", "checkpoint": None}}, distill_new) == [
        ("few_step.checkpoint", None, "base.safetensors")], "one of the two runs reads it"
