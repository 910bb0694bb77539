"""The few-step methods' maths: the MeanFlow identity and target, the student starting as the flow."""
from __future__ import annotations

import torch

from meddtfm.config import GeneratorConfig
from meddtfm.flow.few_step import DurationBound, few_step_sample, student_of
from meddtfm.flow.solver import integrate
from meddtfm.models.generator import build_generator
from meddtfm.training.few_step.meanflow import adaptive_l2, mean_flow_jvp, mean_flow_target

GEN = GeneratorConfig(base_channels=8, channel_mult=[1, 2], cond_channels=[8, 8], norm_groups=4, text_dim=16,
                      time_dim=16, num_res_blocks=1, attention_head_dim=8, dropout=0.0)


def test_the_exact_average_velocity_is_its_own_target() -> None:
    """For ``dx/dt = v(x, t) = x`` the average velocity over [t, t + h] is ``u = x (e^h - 1) / h``: the MeanFlow
    identity ``u = v + h du/dt`` (tangent (v, 1, -1)) must give it back, for h > 0 and in the limit h = 0."""
    x = torch.randn(4, 1, 2, 2)
    t = torch.tensor([0.1, 0.3, 0.5, 0.2])
    h = torch.tensor([0.5, 0.2, 0.0, 0.8])

    def u_fn(x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ratio = torch.where(h > 0, torch.expm1(h) / h.clamp_min(1e-12), 1 + h / 2)
        return x * ratio.view(-1, 1, 1, 1) + 0 * t.view(-1, 1, 1, 1)

    u, dudt = mean_flow_jvp(u_fn, x, t, h, v=x)
    torch.testing.assert_close(mean_flow_target(x, h, dudt), u)
    wrong = mean_flow_jvp(u_fn, x, t, h, v=-x)[1]  # another tangent: not the identity
    assert not torch.allclose(mean_flow_target(x, h, wrong), u)


def test_the_adaptive_weight_scales_each_row_by_its_own_error() -> None:
    u, target = torch.zeros(2, 1, 1, 1), torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    expected = torch.tensor([1.0 / (1.0 + 1e-3), 9.0 / (9.0 + 1e-3)]).mean()
    torch.testing.assert_close(adaptive_l2(u, target, p=1.0), expected)
    torch.testing.assert_close(adaptive_l2(u, target, p=0.0), torch.tensor(5.0))


def test_a_meanflow_student_starts_as_the_flow_for_every_duration() -> None:
    torch.manual_seed(0)
    flow = build_generator(GEN, 4, 3).eval()
    student = build_generator(GeneratorConfig(**{**GEN.__dict__, "duration_embedding": True}), 4, 3).eval()
    missing, unexpected = student.load_state_dict(flow.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("duration_mlp.") for k in missing)
    x, t = torch.randn(2, 4, 16, 16), torch.rand(2)
    cond = flow.condition(torch.zeros(2, 3, 16, 16), None, 2)
    for h in (0.0, 0.25, 1.0):
        torch.testing.assert_close(student(x, t, cond, duration=torch.full((2,), h)), flow(x, t, cond))


def test_k_steps_are_uniform_euler_steps_and_a_meanflow_net_jumps_each_whole() -> None:
    torch.manual_seed(0)
    flow = build_generator(GEN, 4, 3).eval()
    cond = flow.condition(torch.zeros(2, 3, 16, 16), None, 2)
    x0 = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        euler = integrate(lambda x, t: flow(x, t, cond), x0, "euler", steps=4).x
        torch.testing.assert_close(few_step_sample(flow, x0, cond, 4), euler)
        mean = build_generator(GeneratorConfig(**{**GEN.__dict__, "duration_embedding": True}), 4, 3).eval()
        bound = student_of(mean, 2, t0=0.5)
        assert isinstance(bound, DurationBound) and bound.h == 0.25 and student_of(flow, 2) is flow
        x, t = x0, 0.5
        mean_cond = mean.condition(torch.zeros(2, 3, 16, 16), None, 2)
        for _ in range(2):
            x, t = x + 0.25 * mean(x, torch.full((2,), t), mean_cond, duration=torch.full((2,), 0.25)), t + 0.25
        torch.testing.assert_close(few_step_sample(mean, x0, mean_cond, 2, t0=0.5), x)


def test_teacher_targets_are_drawn_once_per_sample_and_noise() -> None:
    from meddtfm.flow.sampling import ConditionInputs, Guidance, SolverSpec
    from meddtfm.training.few_step.teacher import TeacherTargets

    torch.manual_seed(0)
    targets = TeacherTargets(build_generator(GEN, 4, 3).eval(), 0, SolverSpec("heun", 2), Guidance(2.0, 2.0))
    mask = torch.zeros(2, 3, 16, 16)
    mask[0, 0, 2:6, 2:6] = 1
    batch = {"image": torch.zeros(2, 4, 16, 16), "sample_id": ["a", "b"]}
    cond = ConditionInputs(2, mask, drop_mask=torch.tensor([False, True]))
    x0, x1 = targets(batch, cond, torch.tensor([0, 1]))
    again_x0, again_x1 = targets(batch, cond, torch.tensor([0, 1]))
    assert targets.drawn == 2 and torch.equal(x0, again_x0) and torch.equal(x1, again_x1)
    other_x0, _ = targets(batch, cond, torch.tensor([1, 1]))
    assert targets.drawn == 3 and not torch.equal(other_x0[0], x0[0]) and torch.equal(other_x0[1], x0[1])
