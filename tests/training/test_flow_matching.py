"""Med-DT-FM training end to end on tiny phantoms: losses, no-DT switch, exact resume after SIGKILL, DDP."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from meddtfm.checkpoint import load_state, load_weights
from meddtfm.cli.main import cli

from .conftest import DATA, GEN, _free_port, _losses, _sets


def _train(out, *extra, steps=4):
    return CliRunner().invoke(cli, ["train", *_sets(DATA, GEN, [f"train.steps={steps}", *extra]), "--out", str(out)])


def test_full_objective_trains_and_writes_outputs(tmp_path, teacher):
    result = _train(tmp_path, f"encoder.checkpoint={teacher}", "flow.adv_start_step=2", "flow.coupling=ot")
    assert result.exit_code == 0, result.output
    for name in ("loss/fm", "loss/dt", "dt/level0", "dt/level3"):
        assert len(_losses(tmp_path, name)) == 4, name
    assert set(_losses(tmp_path, "loss/adv_d")) == {3, 4}, "the discriminator starts at flow.adv_start_step"
    assert (tmp_path / "samples" / "step_0000004.png").is_file()
    state, meta = load_weights(tmp_path / "final.safetensors")
    assert meta["model"] == "meddtfm" and meta["ref_channels"] == 32 and meta["class_names"] == ["NCR", "ED", "ET"]
    assert any(k.startswith("ref_adapter") for k in state)


def test_the_recipe_switches_train_together(tmp_path, teacher):
    # Every new switch on, with the older ones it must combine with (cosine L_DT at levels 1-3 through the
    # MLP projector, stopped after step 3; the reference path; the adversary from step 0).
    result = _train(tmp_path, f"encoder.checkpoint={teacher}", "flow.adv_start_step=0", "flow.dt_kind=cosine",
                    "flow.projector=mlp", "flow.dt_weights=[0,0.5,0.5,0.5]", "flow.dt_stop_step=3",
                    "flow.dt_normalize=spatial", "flow.adv_min_t=0.2", "flow.adv_weighting=t", "flow.r1_gamma=0.1",
                    "flow.x1_loss=pseudo_huber", "flow.x1_loss_min_t=0.3", "flow.x1_loss_weight=0.5",
                    "train.ema_halflife_images=64", "flow.ema=false")
    assert result.exit_code == 0, result.output
    for name in ("loss/fm", "loss/x1", "loss/adv_g", "loss/adv_d", "loss/r1"):
        assert sorted(_losses(tmp_path, name)) == [1, 2, 3, 4], name
    assert sorted(_losses(tmp_path, "loss/dt")) == [1, 2, 3], "L_DT stops at flow.dt_stop_step"
    assert all(v > 0 for v in _losses(tmp_path, "loss/x1").values())
    # flow.ema=false: no EMA is kept, and the raw generator is what final.safetensors holds.
    state = load_state(tmp_path / "checkpoints" / "step_0000004.pt")
    final, _ = load_weights(tmp_path / "final.safetensors")
    assert "ema" not in state and final.keys() == state["nets"]["generator"].keys()
    assert all(torch.equal(final[k], state["nets"]["generator"][k]) for k in final)


def test_no_dt_is_one_switch(tmp_path, teacher):
    result = _train(tmp_path, f"encoder.checkpoint={teacher}", "flow.dt_weights=[0,0,0,0]", "flow.adv_weight=0")
    assert result.exit_code == 0, result.output
    assert _losses(tmp_path, "loss/fm") and not _losses(tmp_path, "loss/dt")


def test_distillation_needs_a_teacher(tmp_path):
    result = _train(tmp_path)
    assert result.exit_code == 2 and "encoder.checkpoint" in result.output


def test_captions_condition_dermoscopy_without_teacher(tmp_path):
    result = _train(tmp_path, "data.phantom_kind=dermoscopy", "flow.dt_weights=[0,0,0,0]", "flow.reference=false",
                    "flow.adv_weight=0")
    assert result.exit_code == 0, result.output
    _, meta = load_weights(tmp_path / "final.safetensors")
    assert "melanoma" in meta["tokenizer"]["vocab"] or "nevus" in meta["tokenizer"]["vocab"]


def _cli_args(out, teacher, steps):
    return [sys.executable, "-m", "meddtfm", "train", *_sets(DATA, GEN, [
        f"train.steps={steps}", f"encoder.checkpoint={teacher}", "flow.adv_start_step=3", "train.val_every=100"]),
        "--out", str(out)]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, teacher):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(_cli_args(tmp_path / "full", teacher, 8), env=env, capture_output=True, text=True,
                          timeout=300)
    assert full.returncode == 0, full.stderr[-2000:]
    killed = subprocess.Popen(_cli_args(tmp_path / "killed", teacher, 8), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (tmp_path / "killed" / "checkpoints" / "step_0000004.pt").exists():
        assert killed.poll() is None and time.monotonic() < deadline, "run ended before its step-4 checkpoint"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(_cli_args(tmp_path / "killed", teacher, 8), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    for name in ("loss/fm", "loss/dt", "loss/adv_d"):
        a, b = _losses(tmp_path / "full", name), _losses(tmp_path / "killed", name)
        assert sorted(a) == sorted(b) and a, name
        assert all(a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6) for s in a), (name, a, b)


def test_two_gloo_processes_match_one(tmp_path, teacher):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = _sets(DATA, GEN, ["train.steps=3", f"encoder.checkpoint={teacher}", "flow.adv_weight=0",
                               "data.augment=false", "train.device=cpu"])
    one = subprocess.run([sys.executable, "-m", "meddtfm", "train", *common, "--set", "data.batch_size=4",
                          "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                          f"--master_port={_free_port()}", "-m", "meddtfm", "train", *common,
                          "--set", "data.batch_size=2", "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    for name in ("loss/fm", "loss/dt"):
        a, b = _losses(tmp_path / "one", name), _losses(tmp_path / "two", name)
        assert len(a) == 3 and all(a[s] == pytest.approx(b[s], rel=1e-4) for s in a), (name, a, b)
    # Weights agree to Adam's step size: parameters with ~0 gradients (e.g. unused null embeddings) take
    # arbitrary +-lr steps from float noise, so exact equality is not expected; lr = 2e-4, 3 steps.
    w1, _ = load_weights(tmp_path / "one" / "final.safetensors")
    w2, _ = load_weights(tmp_path / "two" / "final.safetensors")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1 if w1[k].is_floating_point()) < 3 * 2e-4 * 1.01
