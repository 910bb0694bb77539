"""Med-DT-FM with the adversary on from step 0: two gloo processes under torchrun train like one.

Distillation and the reference path are off (no teacher; test_flow_matching.py's DDP test covers them),
so the test costs little more than starting the processes. They can agree to float rounding: each rank
draws its rows of the global batch's noise and times, the discriminator normalises per sample (instance
norm, no batch statistics), and its losses are means over samples, so the ranks' mean over their rows is
one process's mean over all of them. From step 2 on, ``loss/adv_d`` also fails if the discriminator's
gradients are not all-reduced (the ranks' discriminators drift apart).

The adversary's recipe switches are on, with two micro-batches a step: the R1 penalty differentiates the
discriminator's input gradient (a double backward inside DDP), the first micro-batch runs under
``no_sync``, and ``adv_min_t``, ``adv_weighting`` and ``x1_loss`` keep or weigh rows by their t, means still
over all rows. One process with micro-batches of 2 rows must match two with 1 row each. The processes' start
dominates the cost, so one test covers the adversary's DDP path with the switches rather than two.
"""
import os
import subprocess
import sys

import pytest

from .conftest import DATA, GEN, _free_port, _losses, _sets

STEPS = 3


def _rank_logs(log_dir) -> str:
    """What each rank printed (torchrun --redirects), to say why a rank died."""
    return "\n".join(f"--- {p.relative_to(log_dir)}\n{p.read_text()[-1500:]}" for p in sorted(log_dir.rglob("*.log")))


def test_two_gloo_processes_match_one_with_the_adversary_and_its_recipe_switches(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # keeps PYTHONPATH: the code under test
    common = _sets(DATA, GEN, [f"train.steps={STEPS}", "flow.dt_weights=[0,0,0,0]", "flow.reference=false",
                               "flow.adv_weight=0.05", "flow.adv_start_step=0", "flow.sample_steps=1",
                               "flow.r1_gamma=1.0", "flow.adv_min_t=0.2", "flow.adv_weighting=t", "flow.x1_loss=l1",
                               "flow.x1_loss_min_t=0.3", "train.grad_accumulation=2", "data.augment=false",
                               "train.device=cpu"])
    one = subprocess.run([sys.executable, "-m", "meddtfm", "train", *common, "--set", "data.batch_size=2",
                          "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={_free_port()}", f"--log-dir={tmp_path / 'logs'}",
                          "--redirects=3", "-m", "meddtfm", "train", *common, "--set", "data.batch_size=1",
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-1000:] + _rank_logs(tmp_path / "logs")
    steps = list(range(1, STEPS + 1))
    for run in ("one", "two"):
        for name in ("loss/adv_d", "loss/adv_g"):
            assert sorted(_losses(tmp_path / run, name)) == steps, (run, name)
    for name in ("loss/fm", "loss/x1", "loss/adv_d", "loss/adv_g", "loss/r1"):
        a, b = _losses(tmp_path / "one", name), _losses(tmp_path / "two", name)
        assert all(a[s] == pytest.approx(b[s], rel=1e-4) for s in steps), (name, a, b)
