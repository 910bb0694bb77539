"""``meddtfm distill-steps`` end to end on phantoms: a tiny flow fine-tuned into a k-step generator per method."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from meddtfm.checkpoint import load_weights, save_weights
from meddtfm.cli.main import cli
from meddtfm.flow.few_step import FewStep
from meddtfm.synthesis import Synthesizer, load_generator, sampling_spec
from meddtfm.synthesis.few_step import FewStepError

DATA = ["data.phantom_count=12", "data.val_fraction=0.2", "data.test_fraction=0.2", "data.resolution=16",
        "data.batch_size=2", "data.num_workers=0"]
TRAIN = ["train.warmup_steps=1", "train.val_every=100", "train.checkpoint_every=1", "train.sample_every=100",
         "train.log_every=1"]
GEN = ["generator.base_channels=8", "generator.channel_mult=[1,2]", "generator.cond_channels=[8,8]",
       "generator.norm_groups=4", "generator.text_dim=16", "generator.time_dim=16", "generator.num_res_blocks=1",
       "generator.attention_at_bottleneck=false", "flow.adv_weight=0", "flow.val_batches=1",
       "flow.dt_weights=[0,0,0,0]", "flow.reference=false", "train.steps=4"]
FEW = ["few_step.iterations=2", "few_step.teacher_nfe=2", "few_step.noise_pool=1", "few_step.disc_channels=8",
       "few_step.disc_layers=2", "few_step.disc_scales=1", "few_step.cfg=1.5"]
METHODS = ("adversarial", "reflow", "meanflow")


def _sets(*groups: list[str]) -> list[str]:
    return [a for group in groups for o in group for a in ("--set", o)]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (repr(result.exception) if result.exit_code == 1 else "")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step Med-DT-FM without teacher (no DT, no reference path) on 16 px MRI phantoms."""
    out = tmp_path_factory.mktemp("flow")
    code, text = _run("train", *_sets(DATA, TRAIN, GEN), "--out", str(out))
    assert code == 0, text
    return out / "final.safetensors"


@pytest.fixture(scope="module")
def distilled(flow: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each method's OUT folder after ``distill-steps --steps 1,4``."""
    runs = {}
    for method in METHODS:
        out = tmp_path_factory.mktemp(method)
        code, text = _run("distill-steps", "--checkpoint", str(flow), "--method", method, "--steps", "1,4",
                          *_sets(TRAIN, FEW), "--out", str(out))
        assert code == 0, text
        runs[method] = out
    return runs


@pytest.mark.parametrize("method", METHODS)
def test_the_distilled_model_samples_at_its_trained_nfes(distilled: dict[str, Path], method: str) -> None:
    out = distilled[method]
    state, meta = load_weights(out / "final.safetensors")
    record = FewStep.from_meta(meta)
    assert record is not None and record.method == method and record.steps == (1, 4) and record.cfg == 1.5
    assert meta["step"] == 2 and meta["images"] == 2 * 2 and (any("duration_mlp" in k for k in state)
                                                                == (method == "meanflow"))
    result = json.loads((out / "train_result.json").read_text())
    assert result["images"] == 4 and result["base_images"] == 4 * 2 and result["budget_fraction"] == 0.5
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000002_nfe1.png",
                                                                        "step_0000002_nfe4.png"]
    net, info = load_generator(out / "final.safetensors")
    masks = torch.zeros(2, 3, 16, 16)
    masks[:, 1, 4:10, 4:10] = 1
    for k in (1, 4):
        synth = Synthesizer(net, info, sampling_spec(info.few_step, out, nfe=k), _guidance(1.5))
        a, b = synth.noise_based([0, 1], masks), synth.noise_based([2, 3], masks)
        assert a.x.shape == (2, 4, 16, 16) and a.nfe == k and not torch.equal(a.x, b.x)
        assert not torch.equal(a.x[0], a.x[1])


def _guidance(scale: float):
    from meddtfm.flow.sampling import Guidance

    return Guidance(scale, scale)


def test_an_untrained_nfe_solver_or_guidance_is_refused(distilled: dict[str, Path]) -> None:
    path = distilled["adversarial"] / "final.safetensors"
    net, info = load_generator(path)
    with pytest.raises(FewStepError, match=rf"{path} is a adversarial few-step generator trained for NFE 1, 4; "
                                           r"NFE 2 was not trained"):
        sampling_spec(info.few_step, path, nfe=2)
    with pytest.raises(FewStepError, match="its own k uniform Euler steps"):
        sampling_spec(info.few_step, path, solver="heun", nfe=4)
    with pytest.raises(FewStepError, match="guidance scale 1.5 distilled into it"):
        Synthesizer(net, info, sampling_spec(info.few_step, path, nfe=1), _guidance(2.0))
    code, text = _run("sample", "--checkpoint", str(path), "--dataset", "test", "--nfe", "2", "--cfg", "1.5",
                      "--out", str(distilled["adversarial"] / "s"))
    assert code == 2 and f"Error: {path} is a adversarial few-step generator trained for NFE 1, 4" in text, text


def test_sample_and_evaluate_take_the_few_step_model(distilled: dict[str, Path]) -> None:
    path = distilled["reflow"] / "final.safetensors"
    out = distilled["reflow"] / "sampled"
    code, text = _run("sample", "--checkpoint", str(path), "--dataset", "test", "--nfe", "4", "--cfg", "1.5",
                      "--out", str(out))
    assert code == 0, text
    rows = (out / "manifest.csv").read_text().splitlines()
    assert "euler,4" in rows[1] and rows[1].count("reflow") >= 1
    code, text = _run("sample", "--checkpoint", str(path), "--dataset", "test", "--cfg", "1.5", "--mode", "reference",
                      "--dataset-reference", "healthy", "--start", "noise", "--t0", "0.5", "--out", str(out / "ref"))
    assert code == 0, text
    code, text = _run("evaluate", "--checkpoint", str(path), "--cfg", "1.5", "--metrics", "paired", "--nfe", "1",
                      "--out", str(out / "eval"))
    assert code == 0, text
    settings = json.loads((out / "eval" / "metrics.json").read_text())["settings"]
    assert settings["solver"] == "euler" and settings["nfe"] == 1 and settings["few_step"]["method"] == "reflow"


def test_a_resumed_run_continues(flow: Path, tmp_path: Path) -> None:
    args = ["distill-steps", "--checkpoint", str(flow), "--method", "adversarial", *_sets(TRAIN, FEW)]
    code, text = _run(*args, "--out", str(tmp_path / "resumed"))
    assert code == 0, text
    code, text = _run(*args, "--set", "few_step.iterations=3", "--out", str(tmp_path / "resumed"))
    assert code == 0 and "distilled for 3 steps" in text, text
    code, text = _run(*args, "--set", "few_step.iterations=3", "--out", str(tmp_path / "straight"))
    assert code == 0, text
    resumed, _ = load_weights(tmp_path / "resumed" / "final.safetensors")
    straight, meta = load_weights(tmp_path / "straight" / "final.safetensors")
    assert meta["step"] == 3 and all(torch.equal(resumed[k], straight[k]) for k in straight)
    code, text = _run(*args, "--set", "few_step.cfg=3", "--out", str(tmp_path / "resumed"))
    assert code == 1 and "few_step.cfg: 1.5 -> 3.0" in text, text


def test_a_bad_checkpoint_is_a_clear_error(flow: Path, distilled: dict[str, Path], tmp_path: Path) -> None:
    code, text = _run("distill-steps", "--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path))
    assert code == 1 and "missing.safetensors: weights file does not exist" in text, text
    _, meta = load_weights(flow)
    gan = save_weights({}, tmp_path / "gan.safetensors", {**meta, "model": "pix2pixhd"})
    code, text = _run("distill-steps", "--checkpoint", str(gan), "--out", str(tmp_path))
    assert code == 1 and "not a `meddtfm train` generator (model='pix2pixhd')" in text, text
    twice = distilled["reflow"] / "final.safetensors"
    code, text = _run("distill-steps", "--checkpoint", str(twice), "--out", str(tmp_path))
    assert code == 1 and f"distil the many-step flow it came from, {flow}" in text, text


def test_a_flow_with_a_reference_path_keeps_it_and_records_a_moved_teacher(tmp_path: Path) -> None:
    """Distil a flow whose bridge 0 is seeded by the U-KAN's E_0: --teacher records where it lives now, and the
    few-step model samples reference-guided from the noised reference."""
    data = [o.replace("resolution=16", "resolution=32") for o in DATA]
    code, text = _run("pretrain-encoder", *_sets(data, TRAIN, ["encoder.widths=[4,8,16,24,32]", "train.steps=1"]),
                      "--out", str(tmp_path / "ukan"))
    assert code == 0, text
    teacher = tmp_path / "ukan" / "best.safetensors"
    gen = [o for o in GEN if not o.startswith("flow.reference")]
    code, text = _run("train", *_sets(data, TRAIN, gen, [f"encoder.checkpoint={teacher}", "train.steps=1"]),
                      "--out", str(tmp_path / "flow"))
    assert code == 0, text
    moved = tmp_path / "moved.safetensors"
    teacher.rename(moved)
    args = ["distill-steps", "--checkpoint", str(tmp_path / "flow" / "final.safetensors"), "--method", "reflow",
            "--steps", "2", *_sets(TRAIN, FEW), "--out", str(tmp_path / "fast")]
    code, text = _run(*args)
    assert code == 0, text  # distilling itself needs no U-KAN: it trains noise-based generation
    code, text = _run(*args, "--teacher", str(moved), "--fresh")
    assert code == 0, text
    _, meta = load_weights(tmp_path / "fast" / "final.safetensors")
    assert meta["teacher"] == str(moved) and meta["ref_channels"] > 0
    code, text = _run("sample", "--checkpoint", str(tmp_path / "fast" / "final.safetensors"), "--dataset", "test",
                      "--cfg", "1.5", "--mode", "reference", "--dataset-reference", "healthy", "--start", "noise",
                      "--t0", "0.3", "--out", str(tmp_path / "ref"))
    assert code == 0 and "SSIM to the reference" in text, text
    code, text = _run("sample", "--checkpoint", str(tmp_path / "fast" / "final.safetensors"), "--dataset", "test",
                      "--cfg", "1.5", "--mode", "reference", "--dataset-reference", "healthy",
                      "--out", str(tmp_path / "inverted"))
    assert code == 1 and "inverting needs the base flow" in text, text


def test_the_pipeline_samples_a_few_step_model_with_its_own_steps(distilled: dict[str, Path]) -> None:
    from meddtfm import MedDTFMPipeline
    from meddtfm.pipeline.inputs import InputError

    pipe = MedDTFMPipeline.from_pretrained(distilled["adversarial"] / "final.safetensors")
    mask = torch.zeros(len(pipe.class_names), pipe.resolution, pipe.resolution)
    mask[0, 8:16, 8:16] = 1
    out = pipe(masks=mask, seed=[0, 1])
    assert out.images.shape[0] == 2 and out.nfe == 1, "by default the fewest NFE it was trained for"
    assert pipe(masks=mask, nfe=4).nfe == 4
    with pytest.raises(InputError, match="NFE 8 was not trained"):
        pipe(masks=mask, nfe=8)
