"""Sampling: compositional CFG, seeding, ODE inversion, blending and input checks, on tiny random networks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from meddtfm.config import GeneratorConfig
from meddtfm.flow.sampling import (
    ConditionInputs,
    Guidance,
    GuidedVelocity,
    SolverSpec,
    generate,
    invert,
    lesion_region,
    reference_guided,
    sample_seed,
    seeded_noise,
)
from meddtfm.models.generator import VelocityNet, build_generator
from meddtfm.models.text import CaptionTokenizer
from meddtfm.models.ukan import UKAN, FrozenTeacher
from meddtfm.synthesis import ConditionError, GeneratorMeta, Synthesizer

C, K, S, REF = 2, 3, 32, 12


def tiny_net(ref_channels: int = REF) -> VelocityNet:
    """A tiny generator with every weight jittered (residual branches start near zero, hiding the conditions)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(base_channels=8, channel_mult=[1, 2, 2, 4], num_res_blocks=1, cond_channels=[8, 8, 4, 4],
                          text_dim=16, text_layers=1, text_heads=2, max_caption_len=8, vocab_size=20, time_dim=16,
                          attention_head_dim=16, dropout=0.0)
    net = build_generator(cfg, C, K, ref_channels)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def masks(b: int = 3) -> torch.Tensor:
    m = torch.zeros(b, K, S, S)
    for i in range(b):
        m[i, i % K, 8 + i:16 + i, 10:18] = 1
    return m


def cond(b: int = 3, captions: bool = True) -> ConditionInputs:
    tokens = torch.randint(3, 20, (b, 8), generator=torch.Generator().manual_seed(1)) if captions else None
    return ConditionInputs(b, masks(b), tokens)


def image(b: int = 3) -> torch.Tensor:
    """Smooth images in [-1, 1], (b, C, S, S)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, S), torch.linspace(-1, 1, S), indexing="ij")
    return torch.stack([torch.stack([torch.tanh(2 * (xx * (i + 1) - yy)), torch.cos(3 * yy + i) * 0.8])
                        for i in range(b)])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))  # peak-to-peak 2 on [-1, 1]


@pytest.mark.parametrize("s_m, s_y, has_caption, expected", [
    (1, 1, True, {"full": 1}),
    (2, 2, True, {"null": -1, "full": 2}),  # ordinary joint CFG: two copies
    (1, 3, True, {"mask": -2, "full": 3}),
    (2, 3, True, {"null": -1, "mask": -1, "full": 3}),
    (2, 5, False, {"null": -1, "full": 2}),  # no captions: s_y is meaningless and ignored
])
def test_guidance_weights(s_m: float, s_y: float, has_caption: bool, expected: dict) -> None:
    assert Guidance(s_m, s_y).weights(True, has_caption) == expected
    assert Guidance(s_m, s_y).weights(False, False) == {"full": 1}


@torch.no_grad()
def test_cfg_scale_one_is_the_plain_conditional_in_one_pass() -> None:
    net, c = tiny_net(), cond()
    x, t, f_ref = torch.randn(3, C, S, S), torch.full((3,), 0.3), torch.randn(3, REF, 1, 1)
    calls = []
    hook = net.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    guided = GuidedVelocity(net, c, Guidance(1.0, 1.0), f_ref)(x, t)
    hook.remove()
    plain = net(x, t, net.condition(c.mask, c.tokens, 3), f_ref)
    assert calls == [3] and torch.equal(guided, plain)


@torch.no_grad()
def test_compositional_cfg_is_one_batched_forward_of_the_formula() -> None:
    net, c = tiny_net(), cond()
    x, t = torch.randn(3, C, S, S), torch.full((3,), 0.6)
    calls = []
    hook = net.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    guided = GuidedVelocity(net, c, Guidance(2.0, 3.0))(x, t)
    hook.remove()
    yes = torch.ones(3, dtype=torch.bool)
    v00 = net(x, t, net.condition(c.mask, c.tokens, 3, drop_mask=yes, drop_caption=yes))
    vm0 = net(x, t, net.condition(c.mask, c.tokens, 3, drop_caption=yes))
    vmy = net(x, t, net.condition(c.mask, c.tokens, 3))
    assert calls == [9]
    torch.testing.assert_close(guided, v00 + 2 * (vm0 - v00) + 3 * (vmy - vm0), atol=1e-5, rtol=1e-5)


def test_per_class_guidance_weights() -> None:
    assert Guidance(1, 1, ((2, 3.0),)).weights(True, True) == {"full": 3, "without:2": -2}
    assert Guidance(2, 2, ((0, 0.0), (2, 1.0))).weights(True, False) == {"null": -1, "full": 1, "without:0": 1}
    assert Guidance(2, 2, ((2, 3.0),)).weights(False, True) == {"null": -1, "full": 2}  # no mask: no class term


@torch.no_grad()
def test_per_class_guidance_is_the_formula_and_scale_zero_removes_the_class() -> None:
    net, c = tiny_net(), cond()
    x, t = torch.randn(3, C, S, S), torch.full((3,), 0.4)
    without_et = c.mask.clone()
    without_et[:, 2] = 0
    yes = torch.ones(3, dtype=torch.bool)
    v00 = net(x, t, net.condition(c.mask, c.tokens, 3, drop_mask=yes, drop_caption=yes))
    vmy = net(x, t, net.condition(c.mask, c.tokens, 3))
    vm_y = net(x, t, net.condition(without_et, c.tokens, 3))
    guided = GuidedVelocity(net, c, Guidance(2.0, 2.0, ((2, 3.0),)))(x, t)
    torch.testing.assert_close(guided, v00 + 2 * (vmy - v00) + 2 * (vmy - vm_y), atol=1e-5, rtol=1e-5)
    dropped = GuidedVelocity(net, c, Guidance(1.0, 1.0, ((2, 0.0),)))(x, t)
    torch.testing.assert_close(dropped, vm_y, atol=1e-5, rtol=1e-5)  # = the mask without ET (sample 2 has ET only)
    assert not torch.allclose(dropped[2], vmy[2], atol=1e-3) and torch.allclose(dropped[:2], vmy[:2], atol=1e-5)
    with pytest.raises(ValueError, match="class 3: the masks have 3 classes"):
        GuidedVelocity(net, c, Guidance(1.0, 1.0, ((3, 2.0),)))


@torch.no_grad()
def test_noise_sampling_is_deterministic_and_independent_of_the_batch() -> None:
    net, spec = tiny_net(), SolverSpec("heun", 4)
    seeds = [sample_seed(0, name) for name in ("a", "b", "c")]
    assert len(set(seeds)) == 3 and sample_seed(0, "a") == seeds[0] and sample_seed(1, "a") != seeds[0]
    x0 = seeded_noise(seeds, (C, S, S))
    full = generate(net, x0, cond(), spec, Guidance(2.0, 1.5))
    again = generate(net, seeded_noise(seeds, (C, S, S)), cond(), spec, Guidance(2.0, 1.5))
    assert full.nfe == 4 and torch.equal(full.x, again.x)
    c = cond()
    alone = ConditionInputs(1, c.mask[1:2], c.tokens[1:2])  # sample "b" in a batch of its own
    single = generate(net, seeded_noise(seeds[1:2], (C, S, S)), alone, spec, Guidance(2.0, 1.5))
    torch.testing.assert_close(single.x[0], full.x[1], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_inversion_round_trip_is_exact_up_to_solver_error() -> None:
    """A random network's velocity oscillates fast in t (it never learnt to be smooth), so rk4 needs 32 steps."""
    net, ref, c = tiny_net(), image(2), cond(2)
    f_ref = torch.randn(2, REF, 1, 1)
    scores = {}
    for method, nfe in (("euler", 4), ("rk4", 128)):
        spec = SolverSpec(method, nfe)
        x0 = invert(net, ref, c, spec, 0.0, f_ref)
        assert x0.nfe == nfe and x0.x.std() > 0.5  # a noise-like latent, far from the image
        back = generate(net, x0.x, c, spec, Guidance(), f_ref)
        scores[method] = psnr(back.x, ref)
    assert scores["rk4"] > 45 and scores["rk4"] > scores["euler"] + 20, scores


def test_lesion_region_is_a_disk_dilation() -> None:
    m = torch.zeros(1, K, 9, 9)
    m[0, 1, 4, 4] = 1
    region = lesion_region(m, 2)
    assert region.shape == (1, 1, 9, 9) and int(region.sum()) == 13  # lattice points with x^2 + y^2 <= 4
    assert torch.equal(lesion_region(m, 0)[0, 0], m[0, 1].bool())


@torch.no_grad()
@pytest.mark.parametrize("noised", [False, True])
def test_blending_keeps_the_reference_outside_the_dilated_lesion(noised: bool) -> None:
    net, ref, c = tiny_net(), image(), cond()
    region = lesion_region(c.mask, 3)
    noise = seeded_noise([1, 2, 3], (C, S, S)) if noised else None
    out = reference_guided(net, ref, c, ConditionInputs(3, torch.zeros(3, K, S, S)), SolverSpec("euler", 4),
                           Guidance(2.0), torch.randn(3, REF, 1, 1), t0=0.4 if noised else 0.0, noise=noise,
                           region=region)
    outside = ~region.expand_as(ref)
    assert torch.equal(out.x[outside], ref[outside])
    assert (out.x[~outside] - ref[~outside]).abs().mean() > 1e-2
    assert out.nfe == (4 if noised else 8)  # the inversion counts too


@torch.no_grad()
def test_the_unblended_output_is_the_same_start_integrated_without_blending() -> None:
    net, ref, c, f_ref = tiny_net(), image(), cond(), torch.randn(3, REF, 1, 1)
    ref_cond, spec = ConditionInputs(3, torch.zeros(3, K, S, S)), SolverSpec("euler", 4)
    region = lesion_region(c.mask, 3)
    plain = reference_guided(net, ref, c, ref_cond, spec, Guidance(2.0), f_ref)
    blended = reference_guided(net, ref, c, ref_cond, spec, Guidance(2.0), f_ref, region=region, with_unblended=True)
    assert torch.equal(blended.unblended, plain.x) and blended.nfe == plain.nfe == 8
    outside = ~region.expand_as(ref)
    assert torch.equal(blended.x[outside], ref[outside]) and (plain.x - ref)[outside].abs().mean() > 1e-2
    assert reference_guided(net, ref, c, ref_cond, spec, f_ref=f_ref, region=region).unblended is None
    assert torch.equal(reference_guided(net, ref, c, ref_cond, spec, f_ref=f_ref, with_unblended=True).unblended,
                       reference_guided(net, ref, c, ref_cond, spec, f_ref=f_ref).x)  # no blending: x itself


def synthesizer(teacher: bool = False) -> Synthesizer:
    ukan = FrozenTeacher(UKAN(C, K, widths=(4, 8, 16, 24, 32))) if teacher else None
    net = tiny_net(32 if teacher else REF)
    meta = GeneratorMeta(Path("in-memory"), ("flair", "t1ce"), ("NCR", "ED", "ET"), S,
                         CaptionTokenizer.fit(["edema", "necrotic core"]), 8, {}, 0, ukan)
    return Synthesizer(net, meta, SolverSpec("euler", 2), Guidance(2.0))


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 2, S, S), "K=3"),
    (torch.zeros(2, K, 24, 24), "trained at 32 x 32"),
    (torch.zeros(2, K, 30, 30), "trained at 32 x 32"),
    (torch.full((2, K, S, S), 0.5), "binary"),
    (torch.zeros(K, S, S), "K=3"),
])
def test_masks_that_do_not_fit_fail_before_any_compute(bad: torch.Tensor, message: str) -> None:
    synth = synthesizer()
    synth.net.register_forward_pre_hook(lambda *a: pytest.fail("the network ran"))
    with pytest.raises(ConditionError, match=message):
        synth.noise_based([0, 1], bad)


def test_synthesizer_checks_captions_references_and_modes() -> None:
    synth = synthesizer(teacher=True)
    synth.net.register_forward_pre_hook(lambda *a: pytest.fail("the network ran"))
    with pytest.raises(ConditionError, match="2 captions for 1"):
        synth.noise_based([0], masks(1), ["edema", "edema"])
    with pytest.raises(ConditionError, match=r"\[-1, 1\]"):
        synth.reference_guided(image(1) * 3, [0], masks(1))
    with pytest.raises(ConditionError, match=r"\(B, 2, 32, 32\)"):
        synth.reference_guided(image(1)[:, :1], [0], masks(1))
    with pytest.raises(ConditionError, match="needs masks"):
        synth.reference_guided(image(1), [0], None, ["edema"], blend_dilation=2)
    with pytest.raises(ConditionError, match="t0"):
        synth.reference_guided(image(1), [0], masks(1), t0=1.0)
    with pytest.raises(ValueError, match="multiple of heun's 2"):
        SolverSpec("heun", 7)
    with pytest.raises(ConditionError, match="need_teacher=True"):  # a reference path, but no teacher loaded
        synthesizer(teacher=False).reference_guided(image(1), [0], masks(1))


@torch.no_grad()
def test_synthesizer_reference_mode_runs_with_the_teacher() -> None:
    synth = synthesizer(teacher=True)
    out = synth.reference_guided(image(2), [5, 6], masks(2), ["edema", ""], blend_dilation=1)
    assert out.x.shape == (2, C, S, S) and out.x.abs().max() <= 1
    outside = ~lesion_region(masks(2), 1).expand(-1, C, -1, -1)
    assert torch.equal(out.x[outside], image(2)[outside]) and out.unblended is None
    raw = synth.reference_guided(image(2), [5, 6], masks(2), ["edema", ""], blend_dilation=1, with_unblended=True)
    plain = synth.reference_guided(image(2), [5, 6], masks(2), ["edema", ""])
    assert torch.equal(raw.x, out.x) and torch.equal(raw.unblended, plain.x) and raw.unblended.abs().max() <= 1
