"""``experiments.runs.check_reuse``: a finished run is reused only under its own settings."""
import json

import pytest

from meddtfm.config import ConfigError, load_config, save_config
from meddtfm.experiments.runs import Run, check_reuse


def _finished(tmp_path, steps_reached: int) -> Run:
    cfg = load_config(None, ["train.steps=40", "train.max_minutes=20"])
    save_config(cfg, tmp_path / "config.yaml")
    (tmp_path / "final.safetensors").write_bytes(b"weights")
    (tmp_path / "train_result.json").write_text(json.dumps({"step": steps_reached, "seconds": 1.0}))
    return Run(load_config(None, ["train.steps=40", "train.max_minutes=40"]), tmp_path, "meddtfm")


def test_a_run_that_reached_its_steps_is_reused_under_another_time_cap(tmp_path):
    check_reuse(_finished(tmp_path, 40))


def test_a_run_stopped_by_its_time_cap_is_not_reused_under_another(tmp_path):
    with pytest.raises(ConfigError, match=r"trained with other settings \(train.max_minutes\)"):
        check_reuse(_finished(tmp_path, 31))


def test_any_other_change_is_refused(tmp_path):
    run = _finished(tmp_path, 40)
    run.cfg.train.lr = 1e-3
    with pytest.raises(ConfigError, match="train.lr"):
        check_reuse(run)
