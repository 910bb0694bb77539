"""MedGAN's CasNet: cascaded U-blocks, shapes, skips, caption map."""
import pytest
import torch

from meddtfm.config import MedGANConfig
from meddtfm.models.medgan import CasNet, UBlock

TINY = MedGANConfig(num_blocks=2, depth=3, ngf=4)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels, classes", [(1, 1), (3, 3), (4, 3)])
def test_shapes_and_range(channels, classes, size):
    torch.manual_seed(0)
    g = CasNet(TINY, channels, classes)
    out = g((torch.rand(2, classes, size, size) > 0.5).float())
    assert out.shape == (2, channels, size, size) and out.abs().max() <= 1


def test_cascade_feeds_each_block_the_previous_image():
    g = CasNet(MedGANConfig(num_blocks=3, depth=2, ngf=4), 4, 3)
    assert len(g.blocks) == 3
    assert g.blocks[0].down[0].in_channels == 3 and all(b.down[0].in_channels == 4 for b in g.blocks[1:])
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(g.blocks[2](g.blocks[1](g.blocks[0](x))), g(x))


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_u_block_depths_and_widths(depth):
    block = UBlock(3, 2, ngf=4, depth=depth)
    size = 2**depth
    assert block(torch.randn(2, 3, size, size)).shape == (2, 2, size, size)
    assert [d[0].out_channels if isinstance(d, torch.nn.Sequential) else d.out_channels for d in block.down] == \
        [4 * min(2**i, 8) for i in range(depth)]


def test_skips_carry_fine_detail():
    """Changing one input pixel changes the output near it: the outermost skip connects them."""
    torch.manual_seed(0)
    block = UBlock(1, 1, ngf=4, depth=4)
    x = torch.zeros(1, 1, 32, 32)
    y = x.clone()
    y[..., 5, 5] = 1
    diff = (block(x) - block(y)).abs()[0, 0]
    assert diff[4:7, 4:7].sum() > 0


def test_caption_path_and_size_check():
    text = {"vocab_size": 9, "width": 8, "layers": 1, "heads": 2, "max_len": 4}
    torch.manual_seed(0)
    g = CasNet(TINY, 3, 1, text, caption_channels=2)
    assert g.blocks[0].down[0].in_channels == 1 + 2
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 4:12, 8:20] = 1
    a = g.generate(mask, torch.tensor([[2, 3, 0, 0]] * 2))
    assert a.shape == (2, 3, 32, 32) and (a - g.generate(mask, torch.tensor([[2, 4, 5, 0]] * 2))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="multiples of 8"):
        g(torch.zeros(1, 1, 36, 36))
