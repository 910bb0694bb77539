"""Stage 1's task: per-class Dice + BCE, per-class validation metrics, caption-only samples."""
import pytest
import torch
from torch import nn

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.training.distributed import DistEnv
from meddtfm.training.losses import SegmentationLoss
from meddtfm.training.segmentation import SegmentationTask

CPU = DistEnv(0, 1, torch.device("cpu"))


def test_segmentation_loss_is_per_class_dice_plus_bce():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), (torch.rand(2, 3, 8, 8) > 0.7).float()
    target[:, 1] *= 1 - target[:, 0]
    p = logits.sigmoid()
    inter, total = (p * target).sum((2, 3)), p.sum((2, 3)) + target.sum((2, 3))
    dice = (1 - (2 * inter + 1e-5) / (total + 1e-5)).mean()
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    assert SegmentationLoss(0.7, 0.3)(logits, target).item() == pytest.approx((0.7 * dice + 0.3 * bce).item(), rel=1e-5)


class _Fixed(nn.Module):
    """A 'segmenter' whose logits are given: +10 where ``pred`` is 1, -10 elsewhere."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred, self.anchor = pred, nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.pred[: x.shape[0]] * 20 - 10) + self.anchor


@pytest.fixture(scope="module")
def task():
    cfg = load_config(None, ["data.phantom_count=8", "data.resolution=32", "encoder.widths=[4,8,16,24,32]"])
    return SegmentationTask(cfg, build_dataset(cfg.data, "train", cfg.seed))


def test_validation_reports_dice_and_iou_per_class(task):
    mask = torch.zeros(2, 3, 32, 32)
    mask[:, 0, :8, :8] = 1  # NCR: 64 px
    mask[:, 1, 8:16, :8] = 1  # ED: 64 px
    pred = mask.clone()
    pred[:, 0, :8, :4] = 0  # NCR: half found -> Dice 2*32/(32+64) = 2/3, IoU 1/2
    pred[:, 1, 16:24, :8] = 1  # ED: 64 extra px -> Dice 2*64/(128+64) = 2/3, IoU 1/2
    batch = {"image": torch.zeros(2, 4, 32, 32), "mask": mask, "has_mask": torch.tensor([True, True])}
    metrics = task.validate({"segmenter": _Fixed(pred)}, [batch], CPU)
    assert metrics["dice/NCR"] == pytest.approx(2 / 3) and metrics["iou/NCR"] == pytest.approx(0.5)
    assert metrics["dice/ED"] == pytest.approx(2 / 3) and metrics["iou/ED"] == pytest.approx(0.5)
    assert metrics["dice/mean"] == pytest.approx(2 / 3)  # ET is empty everywhere: ignored, not counted as 0 or 1


def test_caption_only_samples_are_left_out(task):
    mask = torch.zeros(2, 3, 32, 32)
    mask[0, 1, :8] = 1
    net = _Fixed(torch.zeros(2, 3, 32, 32))
    batch = {"image": torch.zeros(2, 4, 32, 32), "mask": mask, "has_mask": torch.tensor([True, False])}
    loss, _ = task.loss({"segmenter": net}, batch, 0)
    assert loss.item() == pytest.approx(task.criterion(net(batch["image"])[:1], mask[:1]).item())
    none = {**batch, "has_mask": torch.tensor([False, False])}
    zero, logs = task.loss({"segmenter": net}, none, 0)
    zero.backward()
    assert zero.item() == 0.0 and logs["seg/loss"] == 0.0 and net.anchor.grad is not None


def test_a_nan_validation_score_never_becomes_the_best(tmp_path, monkeypatch):
    from meddtfm.training.loop import train

    cfg = load_config(None, ["data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0",
                             "encoder.widths=[4,8,16,24,32]", "train.steps=3", "train.val_every=1",
                             "train.warmup_steps=1", "train.sample_every=100"])
    scores = iter([float("nan"), 0.2, 0.1])
    monkeypatch.setattr(SegmentationTask, "validate", lambda self, nets, loader, env: {"dice/mean": next(scores)})
    train_set, val_set = build_dataset(cfg.data, "train", cfg.seed), build_dataset(cfg.data, "val", cfg.seed)
    result = train(SegmentationTask(cfg, train_set), cfg, train_set, val_set, CPU, tmp_path)
    assert result.best == pytest.approx(0.2) and (tmp_path / "best.safetensors").is_file()


def test_kan_layers_get_their_own_learning_rate():
    from meddtfm.models.kan import KANLinear
    from meddtfm.training.loop import param_groups

    cfg = load_config(None, ["data.phantom_count=8", "data.resolution=32", "encoder.widths=[4,8,16,24,32]",
                             "encoder.kan_lr_scale=100", "train.lr=1e-4"])
    seg = SegmentationTask(cfg, build_dataset(cfg.data, "train", cfg.seed))
    groups = param_groups(seg.phases()[0], seg.nets, cfg.train.lr)
    kan = {id(p) for m in seg.nets.modules() if isinstance(m, KANLinear) for p in m.parameters()}
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), pytest.approx(1e-2)]
    assert {id(p) for p in groups[1]["params"]} == kan and kan
    assert sum(len(g["params"]) for g in groups) == len(list(seg.nets.parameters()))
