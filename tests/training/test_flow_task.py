"""MedDTFMTask's losses on one batch: which rows the adversary judges, and what the teacher is shown."""
import pytest
import torch
from torch.utils.data import default_collate

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.training.distributed import DistEnv
from meddtfm.training.flow_matching import MedDTFMTask
from meddtfm.training.losses import AdversarialLoss

TINY = ["data.phantom_count=8", "data.resolution=32", "generator.base_channels=8", "generator.cond_channels=[8,8,8,8]",
        "generator.time_dim=16", "generator.text_dim=16", "generator.num_res_blocks=1",
        "generator.attention_at_bottleneck=false", "flow.disc_channels=8", "flow.disc_layers=2",
        "flow.dt_weights=[0,0,0,0]", "flow.reference=false", "flow.adv_start_step=0", "flow.adv_weight=0.1"]


def _task_and_batch(*extra: str) -> tuple[MedDTFMTask, dict]:
    cfg = load_config(None, [*TINY, *extra])
    data = build_dataset(cfg.data, "all")
    task = MedDTFMTask(cfg, data, None, DistEnv(0, 1, torch.device("cpu")))
    return task, default_collate([data[i] for i in range(4)])


def _adversarial_losses(task: MedDTFMTask, batch: dict) -> tuple[float, float]:
    nets = dict(task.nets)
    _, terms = task.generator_loss(nets, batch, step=0)
    _, d_terms = task.discriminator_loss(nets, batch, step=0)
    return terms["loss/adv_g"], d_terms["loss/adv_d"]


def test_the_adversary_skips_rows_generated_for_a_modified_condition():
    # Every row has a class ablated: x1_hat answers another mask than the real one, so nothing is judged.
    task, batch = _task_and_batch("flow.class_ablation=1.0", "flow.cond_dropout=0.0")
    assert _adversarial_losses(task, batch) == (0.0, 0.0)
    task, batch = _task_and_batch("flow.class_ablation=0.0", "flow.cond_dropout=1.0")  # every mask dropped
    assert _adversarial_losses(task, batch) == (0.0, 0.0)
    task, batch = _task_and_batch("flow.class_ablation=0.0", "flow.cond_dropout=0.0")
    g, d = _adversarial_losses(task, batch)
    assert g != 0.0 and d > 0.0


def test_adversarial_loss_counts_only_the_selected_rows():
    logits = [torch.tensor([[1.0, 3.0], [5.0, 7.0], [-2.0, 0.0]]).view(3, 1, 1, 2)]
    rows = torch.tensor([True, False, True])
    loss = AdversarialLoss("hinge")
    # Row means 2, 6, -1; row 1 is left out, the mean stays over 3 rows (DDP ranks average to the global mean).
    assert loss.generator(logits, rows).item() == pytest.approx(-(2.0 + -1.0) / 3)
    assert loss.generator(logits, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    assert loss.generator(logits).item() == pytest.approx(-14 / 6)


def test_the_reference_path_never_sees_its_own_target(monkeypatch):
    cfg = load_config(None, [*TINY, "flow.reference=true", "flow.adv_weight=0"])
    data = build_dataset(cfg.data, "train")
    seen = []

    class Teacher(torch.nn.Module):
        feature_channels = (4, 4, 4, 4)

        def forward(self, x):
            seen.append(x.clone())
            return [x.mean(1, keepdim=True).expand(-1, 4, -1, -1)[:, :, ::8, ::8]] * 4

    task = MedDTFMTask(cfg, data, Teacher(), DistEnv(0, 1, torch.device("cpu")))
    batch = default_collate([data[i] for i in range(4)])
    task.generator_loss(dict(task.nets), batch, step=0)
    (shown,) = seen
    assert torch.equal(shown, batch["reference"])
    assert all(not torch.equal(r, x) for r, x in zip(shown, batch["image"]))
