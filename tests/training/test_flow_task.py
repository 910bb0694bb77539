"""MedDTFMTask's losses on one batch: which rows the adversary judges, and what the teacher is shown."""
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import default_collate

from meddtfm.config import load_config
from meddtfm.data import build_dataset
from meddtfm.training.distributed import DistEnv
from meddtfm.training.flow_matching import MedDTFMTask
from meddtfm.training.losses import AdversarialLoss, spatial_normalize

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


class _Recorder(torch.nn.Module):
    """A stand-in teacher that records what it is shown: 4 levels of 4 x 4 maps at 32 px."""

    feature_channels, feature_strides = (4, 4, 4, 4), (8, 8, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return [x.mean(1, keepdim=True).expand(-1, 4, -1, -1)[:, :, ::8, ::8]] * 4


def test_the_reference_path_never_sees_its_own_target():
    cfg = load_config(None, [*TINY, "flow.reference=true", "flow.adv_weight=0", "flow.ref_dropout=0"])
    data = build_dataset(cfg.data, "train")
    teacher = _Recorder()
    task = MedDTFMTask(cfg, data, teacher, DistEnv(0, 1, torch.device("cpu")))
    batch = default_collate([data[i] for i in range(4)])
    task.generator_loss(dict(task.nets), batch, step=0)
    (shown,) = teacher.seen
    assert torch.equal(shown, batch["reference"])
    assert all(not torch.equal(r, x) for r, x in zip(shown, batch["image"]))


def test_the_teacher_encodes_only_the_references_the_generator_uses(monkeypatch):
    cfg = load_config(None, [*TINY, "flow.reference=true", "flow.adv_weight=0", "flow.ref_dropout=0.5"])
    data = build_dataset(cfg.data, "train")
    teacher = _Recorder()
    task = MedDTFMTask(cfg, data, teacher, DistEnv(0, 1, torch.device("cpu")))
    batch = default_collate([data[i] for i in range(8)])
    given = {}
    forward = type(task.nets["generator"]).forward

    def spy(net, *args, **kwargs):
        given.update(f_ref=args[3], drop_ref=kwargs["drop_ref"])
        return forward(net, *args, **kwargs)

    monkeypatch.setattr(type(task.nets["generator"]), "forward", spy)
    task.generator_loss(dict(task.nets), batch, step=0)
    used = ~given["drop_ref"]
    assert 0 < used.sum() < 8, "the draw should drop some references and keep others"
    (shown,) = teacher.seen
    assert torch.equal(shown, batch["reference"][used])
    assert torch.equal(given["f_ref"][used], _Recorder()(batch["reference"])[0][used])
    assert not given["f_ref"][~used].any()


class _Teacher(torch.nn.Module):
    """A parameter-free stand-in for the U-KAN teacher: 4 levels of 2x2 .. 8x8 maps at 32 px."""

    feature_channels = (6, 5, 4, 3)
    feature_strides = (16, 8, 4, 4)

    def forward(self, x):
        return [F.avg_pool2d(x.mean(1, keepdim=True), s).expand(-1, c, -1, -1) * torch.arange(1, c + 1).view(1, c, 1, 1)
                for c, s in zip(self.feature_channels, self.feature_strides)]


RECIPE = ["data.phantom_count=8", "data.resolution=32", "data.augment=false", "generator.base_channels=8",
          "generator.cond_channels=[8,8,8,8]", "generator.time_dim=16", "generator.text_dim=16",
          "generator.num_res_blocks=1", "generator.attention_at_bottleneck=false", "generator.dropout=0.0",
          "flow.disc_channels=8", "flow.disc_layers=2", "flow.adv_start_step=0", "flow.cond_dropout=0.25"]
NEW_SWITCHES_AT_DEFAULTS = ["flow.dt_normalize=none", "flow.adv_min_t=0.0", "flow.adv_weighting=none",
                            "flow.r1_gamma=0.0", "flow.x1_loss=none", "flow.ema=true", "train.ema_halflife_images=0"]


def _recipe_task(*extra: str) -> tuple[MedDTFMTask, dict]:
    """The full objective (teacher, reference path, adversary) with the same weights and data every call."""
    torch.manual_seed(0)
    cfg = load_config(None, [*RECIPE, *extra])
    data = build_dataset(cfg.data, "train")
    task = MedDTFMTask(cfg, data, _Teacher(), DistEnv(0, 1, torch.device("cpu")))
    return task, default_collate([data[i] for i in range(4)])


def _both_phases(task: MedDTFMTask, batch: dict) -> tuple[float, dict, float, dict]:
    nets = dict(task.nets)
    loss, terms = task.generator_loss(nets, batch, step=3)
    d_loss, d_terms = task.discriminator_loss(nets, batch, step=3)
    return loss.item(), terms, d_loss.item(), d_terms


def test_the_switches_at_their_defaults_leave_the_losses_as_they_were():
    # Recorded from the code before the switches existed (commit e6a135f), same seeds, one thread.
    loss, terms, d_loss, d_terms = _both_phases(*_recipe_task())
    assert loss == pytest.approx(8.794798851013184, rel=1e-6)
    assert terms["loss/fm"] == pytest.approx(1.6052132844924927, rel=1e-6)
    assert terms["loss/dt"] == pytest.approx(7.187498569488525, rel=1e-6)
    assert terms["loss/adv_g"] == pytest.approx(0.04174149036407471, rel=1e-6)
    assert d_loss == pytest.approx(1.5089287757873535, rel=1e-6)
    assert "loss/x1" not in terms and "loss/r1" not in d_terms
    # Naming every new switch at its default changes nothing, to the bit.
    assert _both_phases(*_recipe_task(*NEW_SWITCHES_AT_DEFAULTS)) == (loss, terms, d_loss, d_terms)


def _generator_step(task: MedDTFMTask, batch: dict) -> tuple[Tensor, dict, dict]:
    """Run the generator phase and backpropagate; returns the rows' times, the terms, and what was captured:
    the generator's inputs and velocity, and the gradient reaching the discriminator's input ``x1_hat``."""
    seen: dict = {}

    def on_generator(module, args, output):
        seen["x_t"], seen["t"], seen["v"] = args[0], args[1], output[0]

    def on_discriminator(module, args):
        if args[0].requires_grad:
            args[0].register_hook(lambda g: seen.__setitem__("x1_hat_grad", g))

    hooks = [task.nets["generator"].register_forward_hook(on_generator)]
    if "discriminator" in task.nets:
        hooks.append(task.nets["discriminator"].register_forward_pre_hook(on_discriminator))
    loss, terms = task.generator_loss(dict(task.nets), batch, step=3)
    loss.backward()
    for h in hooks:
        h.remove()
    return seen["t"], terms, seen


def test_adv_min_t_gives_early_rows_no_adversarial_gradient():
    t, _, _ = _generator_step(*_recipe_task("flow.cond_dropout=0.0"))
    threshold = float(t.sort().values[1:3].mean())  # two rows on each side
    task, batch = _recipe_task("flow.cond_dropout=0.0", f"flow.adv_min_t={threshold}")
    t, _, seen = _generator_step(task, batch)
    late = t >= threshold
    assert late.sum() == 2
    per_row = seen["x1_hat_grad"].flatten(1).abs().sum(1)
    assert (per_row[~late] == 0).all() and (per_row[late] > 0).all()
    # The discriminator judges the same rows.
    assert torch.equal(task._fakes[-1][1], late)


def test_adv_weighting_t_scales_each_rows_adversarial_gradient_by_its_time():
    t, _, plain = _generator_step(*_recipe_task("flow.cond_dropout=0.0"))
    t_w, _, weighted = _generator_step(*_recipe_task("flow.cond_dropout=0.0", "flow.adv_weighting=t"))
    assert torch.equal(t, t_w)
    expected = plain["x1_hat_grad"] * t.view(-1, 1, 1, 1)
    assert torch.allclose(weighted["x1_hat_grad"], expected, rtol=1e-4, atol=1e-9)


def test_x1_loss_is_the_l1_of_the_one_step_estimate_on_late_rows():
    task, batch = _recipe_task("flow.adv_weight=0", "flow.dt_weights=[0,0,0,0]", "flow.x1_loss=l1",
                               "flow.x1_loss_weight=2.0", "flow.x1_loss_min_t=0.5")
    t, terms, seen = _generator_step(task, batch)
    x1_hat = seen["x_t"] + (1 - t.view(-1, 1, 1, 1)) * seen["v"]
    per_row = (x1_hat - batch["image"]).abs().flatten(1).mean(1)
    assert 0 < (t >= 0.5).sum() < 4, "the draw should have rows on both sides of min_t"
    expected = (per_row * (t >= 0.5)).sum() / 4
    assert terms["loss/x1"] == pytest.approx(expected.item(), rel=1e-5)


def test_dt_normalize_spatial_distils_towards_the_normalised_targets():
    projected: list = []
    task, batch = _recipe_task("flow.adv_weight=0", "flow.dt_normalize=spatial")
    task.nets["projectors"].register_forward_hook(lambda m, a, out: projected.extend(out))
    _, terms = task.generator_loss(dict(task.nets), batch, step=3)
    targets = _Teacher()(batch["image"])
    for i, (p, e) in enumerate(zip(projected, targets)):
        assert terms[f"dt/level{i}"] == pytest.approx(F.mse_loss(p, spatial_normalize(e)).item(), rel=1e-5)
    plain_task, _ = _recipe_task("flow.adv_weight=0")
    _, plain = plain_task.generator_loss(dict(plain_task.nets), batch, step=3)
    assert terms["loss/dt"] != pytest.approx(plain["loss/dt"], rel=1e-3)


def test_a_single_distilled_level_has_the_only_projector_and_every_projector_weight_learns():
    # DDP (find_unused_parameters off) needs a gradient for every parameter of a network each step.
    task, batch = _recipe_task("flow.adv_weight=0", "flow.dt_weights=[0.5,0,0,0]", "flow.dt_kind=cosine")
    assert list(task.nets["projectors"].heads) == ["0"]
    loss, terms = task.generator_loss(dict(task.nets), batch, step=3)
    loss.backward()
    assert terms["dt/level0"] > 0 and [terms[f"dt/level{i}"] for i in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.nets["projectors"].parameters())


def test_r1_adds_the_penalty_on_the_real_rows_to_the_discriminator_loss():
    _, _, d_plain, plain = _both_phases(*_recipe_task())
    task, batch = _recipe_task("flow.r1_gamma=5.0")
    nets = dict(task.nets)
    task.generator_loss(nets, batch, step=3)
    d_loss, terms = task.discriminator_loss(nets, batch, step=3)
    assert terms["loss/adv_d"] == plain["loss/adv_d"] and terms["loss/r1"] > 0
    assert d_loss.item() == pytest.approx(d_plain + terms["loss/r1"], rel=1e-6)
    d_loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in task.nets["discriminator"].parameters() if p.grad is not None)


def test_flow_ema_false_leaves_the_task_without_an_ema():
    assert _recipe_task()[0].ema_net == "generator"
    assert _recipe_task("flow.ema=false")[0].ema_net is None


@pytest.mark.parametrize("overrides, words", [
    (["flow.r1_gamma=1.0", "train.compile=true"], "train.compile=false"),
    (["flow.dt_normalize=spatial", "data.resolution=16"], r"level\(s\) \[0\] is 1 x 1"),
])
def test_switches_that_cannot_work_together_are_refused(overrides, words):
    with pytest.raises(ValueError, match=words):
        _recipe_task(*overrides)
