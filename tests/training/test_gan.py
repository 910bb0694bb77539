"""GAN baselines: loss callables, pix2pixHD / MedGAN training end to end through the CLI, reload, resume."""
import csv

import pytest
import torch
from click.testing import CliRunner
from omegaconf import OmegaConf

from meddtfm.checkpoint import load_state, load_weights
from meddtfm.cli.main import cli
from meddtfm.config import GANConfig, load_config
from meddtfm.data import build_dataset
from meddtfm.models.discriminator import MultiScalePatchGAN
from meddtfm.models.text import CaptionTokenizer
from meddtfm.training.distributed import DistEnv
from meddtfm.training.gan import GANTask, build_baseline, load_baseline
from meddtfm.training.losses import discriminator_feature_loss, gram_matrix, style_loss

DATA = ["data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0",
        "train.warmup_steps=1", "train.log_every=1", "train.val_every=4", "train.checkpoint_every=2",
        "train.sample_every=100", "train.ema_decay=0.5"]
GAN = ["gan.ndf=8", "gan.n_layers_d=2", "gan.val_batches=1", "gan.caption_channels=4", "generator.text_dim=16",
       "gan.pix2pixhd.ngf=8", "gan.pix2pixhd.n_downsample_global=2", "gan.pix2pixhd.n_blocks_global=1",
       "gan.medgan.num_blocks=2", "gan.medgan.depth=3", "gan.medgan.ngf=8"]


def _feats(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g) for s in shapes]]


def test_feature_loss_weights_layers_and_ignores_logits():
    real = _feats((2, 4, 8, 8), (2, 8, 4, 4), (2, 1, 3, 3))
    fake = [[real[0][0] + 1, real[0][1] + 2, real[0][2] + 5]]
    assert discriminator_feature_loss(real, real).item() == 0
    assert discriminator_feature_loss(real, fake).item() == pytest.approx(3.0)  # 1 + 2, logits left out
    assert discriminator_feature_loss(real, fake, [0.5, 2.0]).item() == pytest.approx(4.5)
    assert discriminator_feature_loss(real + real, fake + real).item() == pytest.approx(1.5)  # mean over scales


def test_feature_and_style_losses_train_only_the_fake():
    real = [[f.requires_grad_() for f in _feats((2, 4, 8, 8), (2, 1, 3, 3))[0]]]
    fake = [[f.requires_grad_() for f in _feats((2, 4, 8, 8), (2, 1, 3, 3), seed=1)[0]]]
    (discriminator_feature_loss(real, fake) + style_loss(real, fake)).backward()
    assert real[0][0].grad is None and fake[0][0].grad.abs().sum() > 0


def test_gram_matrix_is_normalised_channel_correlation():
    f = torch.randn(3, 5, 4, 6)
    gram = gram_matrix(f)
    assert gram.shape == (3, 5, 5) and torch.allclose(gram, gram.transpose(1, 2))
    assert torch.allclose(gram[0, 1, 2], (f[0, 1] * f[0, 2]).sum() / (4 * 6 * 5))


def test_style_loss_sees_statistics_not_layout():
    real = _feats((2, 6, 8, 8), (2, 1, 3, 3))
    perm = torch.randperm(64)
    shuffled = [[real[0][0].flatten(2)[..., perm].reshape(2, 6, 8, 8), real[0][1]]]
    assert style_loss(real, shuffled).item() == pytest.approx(0.0, abs=1e-6)
    assert discriminator_feature_loss(real, shuffled) > 0
    scaled = [[3 * real[0][0], real[0][1]]]
    d = 6
    expected = ((gram_matrix(scaled[0][0]) - gram_matrix(real[0][0])) ** 2).sum((1, 2)).mean() / (4 * d * d)
    assert style_loss(real, scaled).item() == pytest.approx(expected.item(), rel=1e-5) and expected > 0


def _sets(*groups):
    return [a for group in groups for o in group for a in ("--set", o)]


def _train(out, model, *extra, steps=4):
    result = CliRunner().invoke(cli, ["train", "--model", model, *_sets(DATA, GAN, [f"train.steps={steps}", *extra]),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result


def _metrics(out, name):
    with open(out / "metrics.csv") as fh:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(fh) if r["name"] == name}


@pytest.mark.parametrize("model, terms", [("pix2pixhd", ["loss/feat"]),
                                          ("medgan", ["loss/perceptual", "loss/style", "loss/l1"])])
def test_cli_trains_and_exports_a_reloadable_ema_generator(tmp_path, model, terms):
    _train(tmp_path, model)
    for name in ["loss/adv_g", "loss/adv_d", *terms]:
        assert sorted(_metrics(tmp_path, name)) == [1, 2, 3, 4], name
    assert set(_metrics(tmp_path, "l1")) == {4}
    assert (tmp_path / "samples" / "step_0000004.png").is_file() and (tmp_path / "best.safetensors").is_file()
    assert [p.name for p in sorted((tmp_path / "checkpoints").glob("*.pt"))] == ["step_0000002.pt", "step_0000004.pt"]
    gen, meta = load_baseline(tmp_path / "final.safetensors")
    assert meta["model"] == model and meta["image_channels"] == 4 and meta["class_names"] == ["NCR", "ED", "ET"]
    assert meta["tokenizer"] is None and gen.text is None, "MRI phantoms have no captions"
    # The exported weights are the EMA of the last checkpoint: rebuilt from it, it draws the same images.
    ema = load_state(tmp_path / "checkpoints" / "step_0000004.pt")["ema"]
    gan_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GANConfig), meta["gan"]))
    again = build_baseline(model, gan_cfg, 4, 3)
    again.load_state_dict({k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")})
    mask = (torch.rand(2, 3, 32, 32) > 0.7).float()
    assert torch.equal(gen.generate(mask), again.eval().generate(mask))
    state, _ = load_weights(tmp_path / "final.safetensors")
    raw = load_state(tmp_path / "checkpoints" / "step_0000004.pt")["nets"]["generator"]
    assert any(not torch.equal(state[k], raw[k]) for k in raw), "final.safetensors holds the EMA, not the raw weights"


def test_without_ema_the_raw_generator_is_exported_with_captions(tmp_path):
    _train(tmp_path, "medgan", "gan.ema=false", "data.phantom_kind=dermoscopy", steps=2)
    gen, meta = load_baseline(tmp_path / "final.safetensors")
    raw = load_state(tmp_path / "checkpoints" / "step_0000002.pt")["nets"]["generator"]
    assert all(torch.equal(gen.state_dict()[k], v) for k, v in raw.items())
    tok = CaptionTokenizer.from_state(meta["tokenizer"])
    tokens = tok.encode(["melanoma, back, age 45", "nevus"], meta["text"]["max_len"])
    out = gen.generate(torch.zeros(2, meta["mask_classes"], 32, 32), tokens)
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], out[1])


def test_resume_matches_the_uninterrupted_run(tmp_path):
    _train(tmp_path / "full", "pix2pixhd", steps=4)
    _train(tmp_path / "split", "pix2pixhd", steps=2)
    _train(tmp_path / "split", "pix2pixhd", steps=4)
    for name in ("loss/adv_g", "loss/feat", "loss/adv_d"):
        a, b = _metrics(tmp_path / "full", name), _metrics(tmp_path / "split", name)
        assert sorted(a) == sorted(b) == [1, 2, 3, 4], name
        assert all(a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6) for s in a), (name, a, b)


def test_missing_vgg_weights_stop_the_cli_naming_the_key(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--model", "pix2pixhd", *_sets(DATA, GAN, [
        "gan.pix2pixhd.vgg=true", f"gan.pix2pixhd.vgg_weights={tmp_path / 'vgg19.pth'}"]), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "gan.pix2pixhd.vgg_weights" in result.output


def test_too_small_images_for_the_discriminator_are_named(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--model", "pix2pixhd", *_sets(DATA, GAN, ["gan.n_layers_d=3"]),
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "gan.n_layers_d" in result.output and "gan.pix2pixhd.num_d" in result.output


def test_discriminators_follow_the_papers():
    cfg = load_config(None, DATA + GAN)
    data = build_dataset(cfg.data, "train", cfg.seed)
    env = DistEnv(0, 1, torch.device("cpu"))
    for model, scales in (("pix2pixhd", 2), ("medgan", 1)):
        task = GANTask(cfg, data, env, model)
        disc = task.nets["discriminator"]
        assert isinstance(disc, MultiScalePatchGAN) and len(disc.nets) == scales
        assert [p.name for p in task.phases()] == ["generator", "discriminator"] and task.ema_net == "generator"
    assert GANConfig().adv_kind == "lsgan" and GANConfig().pix2pixhd.feat_weight == 10
