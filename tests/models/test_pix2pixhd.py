"""pix2pixHD generator (global / local enhancer, caption map) and the optional VGG loss."""
import pytest
import torch

from meddtfm.config import ConfigError, GANConfig, Pix2PixHDConfig, load_config
from meddtfm.models.pix2pixhd import Pix2PixHDGenerator, VGGLoss

TINY = Pix2PixHDConfig(ngf=4, n_downsample_global=2, n_blocks_global=1, n_blocks_local=1)
TEXT = {"vocab_size": 12, "width": 8, "layers": 1, "heads": 2, "max_len": 6}


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels, classes", [(1, 1), (3, 3), (4, 3)])
def test_shapes_and_range(channels, classes, size, local):
    torch.manual_seed(0)
    cfg = Pix2PixHDConfig(**{**TINY.__dict__, "local_enhancer": local})
    g = Pix2PixHDGenerator(cfg, channels, classes)
    mask = (torch.rand(2, classes, size, size) > 0.5).float()
    out = g(mask)
    assert out.shape == (2, channels, size, size) and out.abs().max() <= 1
    assert g.size_multiple == 2 ** (2 + local)


def test_local_enhancer_runs_global_net_at_half_size():
    g = Pix2PixHDGenerator(Pix2PixHDConfig(**{**TINY.__dict__, "local_enhancer": True}), 1, 1)
    assert g.global_stem.conv[1].out_channels == 2 * TINY.ngf and g.local_stem.conv[1].out_channels == TINY.ngf


def test_caption_shifts_the_stem_and_defaults_to_the_empty_caption():
    torch.manual_seed(0)
    g = Pix2PixHDGenerator(TINY, 3, 1, TEXT, caption_channels=4)
    assert g.caption_channels == 4 and g.global_stem.conv[1].in_channels == 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:24] = 1
    a = g.generate(mask, torch.tensor([[2, 3, 4, 0, 0, 0]] * 2))
    b = g.generate(mask, torch.tensor([[2, 5, 6, 7, 0, 0]] * 2))
    assert (a - b).abs().max() > 1e-3
    assert torch.allclose(g.generate(mask), g.generate(mask, torch.tensor([[2, 0, 0, 0, 0, 0]] * 2)), atol=1e-5)
    assert not g.generate(mask).requires_grad


def test_bad_mask_shape_is_named():
    g = Pix2PixHDGenerator(TINY, 1, 3)
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        g(torch.zeros(1, 2, 32, 32))


def _vgg_file(path, suffix=".pth"):
    """A random state dict in torchvision's vgg19 layout (features up to conv5_4, a classifier key)."""
    layout = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    state, idx, prev = {"classifier.0.weight": torch.zeros(2, 2)}, 0, 3
    for v in layout:
        if v == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(v, prev, 3, 3) * (2 / (9 * prev)) ** 0.5
        state[f"features.{idx}.bias"] = torch.zeros(v)
        idx, prev = idx + 2, v
    file = path / f"vgg19{suffix}"
    torch.save(state, file)
    return file


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    torch.manual_seed(0)
    return VGGLoss(_vgg_file(tmp_path_factory.mktemp("vgg")))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_vgg_loss_is_zero_only_for_the_target_and_trains_the_fake(vgg, channels):
    real = torch.rand(2, channels, 32, 32) * 2 - 1
    fake = (torch.rand(2, channels, 32, 32) * 2 - 1).requires_grad_()
    assert vgg(real, real).item() == pytest.approx(0.0, abs=1e-6)
    loss = vgg(fake, real)
    loss.backward()
    assert loss > 0 and fake.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_needs_a_local_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="gan.pix2pixhd.vgg_weights"):
        load_config(None, ["gan.pix2pixhd.vgg=true"])
    with pytest.raises(ConfigError, match="gan.pix2pixhd.vgg_weights.*does not exist"):
        VGGLoss(tmp_path / "absent.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="not a torchvision vgg19"):
        VGGLoss(tmp_path / "other.pth")
    assert not GANConfig().pix2pixhd.vgg, "the VGG loss is off by default"
