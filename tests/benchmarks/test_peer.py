"""The MONAI peer of the benchmark suite: its time convention, sampling direction and size matching."""
import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("einops", reason="MONAI's DiffusionModelUNet attention needs einops (pip install einops)")
from monai.networks.schedulers import RFlowScheduler  # noqa: E402

from benchmarks.peer import build_unet, count, matched_unet, peer_generate, peer_velocity  # noqa: E402


def test_monai_noising_is_our_path_at_t_ours() -> None:
    scheduler = RFlowScheduler(1000, use_discrete_timesteps=True)
    x1, x0 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    timesteps = torch.tensor([0, 250, 1000])
    t = 1 - timesteps.float() / 1000  # ours: 0 noise, 1 data
    ours = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1
    torch.testing.assert_close(scheduler.add_noise(x1, x0, timesteps), ours)


class Oracle(nn.Module):
    """Returns the straight-path velocity ``x1 - x0`` and records the MONAI timesteps it is asked at."""

    def __init__(self, velocity: Tensor) -> None:
        super().__init__()
        self.velocity, self.times = velocity, []

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        self.times.append(timesteps.float().mean().item())
        return self.velocity


def test_sampling_runs_from_noise_to_data_in_nfe_steps() -> None:
    x0, x1, mask = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.zeros(2, 1, 8, 8)
    oracle = Oracle(x1 - x0)
    out = peer_generate(oracle, RFlowScheduler(1000), mask, x0, nfe=4)
    torch.testing.assert_close(out, x1)
    assert oracle.times == [1000, 750, 500, 250]
    peer_velocity(oracle, x0, torch.full((2,), 0.25), mask, 1000)
    assert oracle.times[-1] == 750


def test_matched_unet_is_within_ten_percent_and_prefers_our_widths() -> None:
    unet = matched_unet(6_000_000, 3, 1, [32, 64, 128, 128], 2)
    assert unet.block_out_channels == (32, 64, 128, 128)
    small = matched_unet(271_000, 4, 3, [8, 16, 32, 32], 1)
    assert abs(count(small) / 271_000 - 1) <= 0.10
    with torch.device("meta"):
        assert count(build_unet(4, 3, [8, 16, 32, 32], 1)) == count(small)
    with pytest.raises(ValueError, match="within 10%"):
        matched_unet(10**9, 3, 1, [8, 16, 16, 16], 1)
