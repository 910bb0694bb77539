"""Two gloo processes under torchrun train like one process on the same global batch."""
import csv
import socket
import subprocess
import sys

import pytest
import torch

from meddtfm.models.segmenters import load_segmenter

ARGS = ["pretrain-encoder", "--model", "unet", "--set", "encoder.unet_features=[4,4,8,8,16,4]",
        "--set", "data.phantom_count=24", "--set", "data.resolution=32", "--set", "data.num_workers=0",
        "--set", "data.augment=false", "--set", "data.test_fraction=0.0", "--set", "train.steps=4",
        "--set", "train.log_every=1",
        "--set", "train.warmup_steps=1", "--set", "train.lr=0.01", "--set", "train.val_every=100",
        "--set", "train.checkpoint_every=100", "--set", "train.sample_every=100", "--set", "train.device=cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out):
    with open(out / "metrics.csv") as fh:
        return [float(r["value"]) for r in csv.DictReader(fh) if r["name"] == "seg/loss"]


def _rank_logs(log_dir) -> str:
    """What each rank printed (torchrun --redirects), to say why a rank died."""
    return "\n".join(f"--- {p.relative_to(log_dir)}\n{p.read_text()[-1500:]}" for p in sorted(log_dir.rglob("*.log")))


def test_two_gloo_processes_match_one_process(tmp_path):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "GLOO_SOCKET_IFNAME": "lo"}
    single = subprocess.run([sys.executable, "-m", "meddtfm", *ARGS, "--set", "data.batch_size=4",
                             "--out", str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=240)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
                          f"--log-dir={tmp_path / 'logs'}", "--redirects=3", "-m", "meddtfm", *ARGS,
                          "--set", "data.batch_size=2", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-1000:] + _rank_logs(tmp_path / "logs")
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 4
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    assert one[-1] < one[0], "it trains"
    # Compare what the networks compute: conv biases in front of instance norm get ~0 gradients
    # that Adam turns into arbitrary +-lr steps, so raw weights differ where outputs cannot.
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    y1 = load_segmenter(tmp_path / "one" / "final.safetensors")[0](x)
    y2 = load_segmenter(tmp_path / "two" / "final.safetensors")[0](x)
    assert torch.allclose(y1, y2, atol=1e-4), (y1 - y2).abs().max()
