import csv

import pytest
import torch

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.models.segmenters import load_segmenter, load_teacher
from meddtfm.training import loop
from meddtfm.training.distributed import DistEnv, ShardedSampler
from meddtfm.training.loop import Phase, TrainingDiverged, train
from meddtfm.training.segmentation import SegmentationTask

TINY = ["data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0",
        "encoder.widths=[4,8,16,24,32]", "train.warmup_steps=1", "train.log_every=1", "train.val_every=3",
        "train.sample_every=100", "train.checkpoint_every=3", "train.lr=0.01"]
CPU = DistEnv(0, 1, torch.device("cpu"))


def _run(out, steps, extra=()):
    cfg = load_config(None, TINY + [f"train.steps={steps}", *extra])
    torch.manual_seed(cfg.seed)
    train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    task = SegmentationTask(cfg, train_set)
    return task, train(task, cfg, train_set, val_set, CPU, out)


def _losses(out):
    with open(out / "metrics.csv") as fh:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(fh) if r["name"] == "seg/loss"}


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    _run(tmp_path / "a", 6)
    _run(tmp_path / "b", 3)
    _run(tmp_path / "b", 6)
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert all(a[s] == pytest.approx(b[s], rel=1e-6, abs=1e-7) for s in a), (a, b)


def test_outputs_load_as_teacher_and_segmenter(tmp_path):
    task, result = _run(tmp_path, 3)
    assert result.step == 3 and result.best is not None
    teacher, meta = load_teacher(tmp_path / "best.safetensors")
    assert meta["channel_names"] == ["flair", "t1", "t1ce", "t2"]
    feats = teacher(torch.zeros(2, 4, 32, 32))
    assert [f.shape[1] for f in feats] == [32, 24, 16, 8] and [f.shape[-1] for f in feats] == [1, 2, 4, 8]
    net, _ = load_segmenter(tmp_path / "final.safetensors")
    assert net(torch.zeros(1, 4, 32, 32)).shape == (1, 3, 32, 32)


def test_unet_is_never_a_teacher(tmp_path):
    _run(tmp_path, 1, ["encoder.model=unet", "encoder.unet_features=[4,4,8,8,16,4]"])
    with pytest.raises(Exception, match="reserved for evaluation"):
        load_teacher(tmp_path / "final.safetensors")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = load_config(None, TINY + ["train.steps=8"])
    train_set = build_dataset(cfg.data, "train", cfg.seed)
    task = SegmentationTask(cfg, train_set)
    good = task.loss

    def poisoned(nets, batch, step):
        loss, terms = good(nets, batch, step)
        return (loss * float("nan"), terms) if step == 4 else (loss, terms)

    task.phases = lambda: [Phase("segmenter", ["segmenter"], poisoned)]
    with pytest.raises(TrainingDiverged, match="step 4.*step_0000003.pt"):
        train(task, cfg, train_set, None, CPU, tmp_path)
    assert [p.name for p in (tmp_path / "checkpoints").glob("*.pt")] == ["step_0000003.pt"]


def test_sharded_sampler_partitions_and_resumes():
    shards = [list(ShardedSampler(10, rank, 2, seed=1)) for rank in (0, 1)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 5
    s = ShardedSampler(10, 0, 2, seed=1)
    s.set_epoch(0, skip=2)
    assert list(s) == shards[0][2:]
    s.set_epoch(1)
    assert list(s) != shards[0]


def test_deterministic_switches_torch_to_deterministic_kernels(tmp_path):
    try:
        _run(tmp_path, 1, ["train.deterministic=true"])
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)


def test_the_ema_half_life_counts_the_images_of_a_whole_update(tmp_path, monkeypatch):
    decays = []
    real_ema_of = loop.ema_of
    monkeypatch.setattr(loop, "ema_of", lambda net, decay: decays.append(decay) or real_ema_of(net, decay))
    cfg = load_config(None, TINY + ["train.steps=1", "train.grad_accumulation=2", "train.ema_halflife_images=80"])
    train_set = build_dataset(cfg.data, "train", cfg.seed)
    task = SegmentationTask(cfg, train_set)
    task.ema_net = "segmenter"
    train(task, cfg, train_set, None, CPU, tmp_path)
    assert decays == [pytest.approx(0.5 ** (4 * 1 * 2 / 80))]  # batch 4 x 1 process x 2 micro-batches
