"""The peer a MONAI user would pick: a mask-conditioned rectified flow from MONAI's own classes.

* network: ``monai.networks.nets.DiffusionModelUNet`` (2D) taking ``[x_t, mask]`` (the one-hot mask
  concatenated to the input channels), ``num_res_blocks`` as our generator, attention only in its
  middle block (our generator has it at the bottleneck only), its widths our generator's when the
  parameter counts then match within ``TOLERANCE``, else scaled until they do (``matched_unet``);
* schedule: ``monai.networks.schedulers.RFlowScheduler`` (1000 discrete training timesteps,
  logit-normal times as ours): ``sample_timesteps`` and ``add_noise`` for training, ``set_timesteps``
  and ``step`` (Euler) for sampling. MONAI's time runs the other way (timestep 1000 is noise), its
  velocity target is ours, ``x1 - x0``; ``t_monai = 1000 (1 - t_ours)``.

``PeerTask`` is a ``meddtfm.training.loop.TrainTask``, so the peer trains through our loop: same
optimiser, warm-up, clipping and EMA. Its validation ``L_FM`` repeats ``MedDTFMTask.validate``'s
recipe (same fixed noise and times), so the two validation losses are the same quantity.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import RFlowScheduler
from torch import Tensor, nn
from torch.utils.data import DataLoader

from meddtfm.config import Config
from meddtfm.data.base import MedicalDataset
from meddtfm.training.distributed import DistEnv
from meddtfm.flow import LinearPath
from meddtfm.training.flow_matching import validation_fm_loss
from meddtfm.training.loop import Nets, Phase

TOLERANCE = 0.10  # parameter counts within +-10%
HEAD_DIM = 32  # MONAI's attention head width, as our generator's attention_head_dim default


def count(net: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in net.parameters())


def build_unet(image_channels: int, mask_classes: int, widths: Sequence[int], num_res_blocks: int) -> DiffusionModelUNet:
    """``DiffusionModelUNet`` for ``[x_t, mask]`` -> velocity; GroupNorm groups and head widths fitted to ``widths``."""
    last = widths[-1]
    heads = next(h for h in range(max(1, last // HEAD_DIM), 0, -1) if last % h == 0)
    return DiffusionModelUNet(
        spatial_dims=2, in_channels=image_channels + mask_classes, out_channels=image_channels,
        channels=tuple(widths), attention_levels=(False,) * len(widths), num_res_blocks=num_res_blocks,
        num_head_channels=last // heads, norm_num_groups=math.gcd(32, *widths),
    )


def matched_unet(target: int, image_channels: int, mask_classes: int, widths: Sequence[int],
                 num_res_blocks: int) -> DiffusionModelUNet:
    """The U-Net with our ``widths`` when its parameter count is within ``TOLERANCE`` of ``target``; else the
    one whose widths, ``widths`` scaled by s in [0.5, 1.5) and rounded to multiples of 4, come closest.
    ``ValueError`` when none is within ``TOLERANCE``."""
    def size(c: tuple[int, ...]) -> int:
        with torch.device("meta"):
            return count(build_unet(image_channels, mask_classes, c, num_res_blocks))

    best = tuple(widths)
    if abs(size(best) / target - 1) > TOLERANCE:
        scaled = {tuple(max(4, 4 * round(s * w / 4)) for w in widths) for s in torch.arange(0.5, 1.5, 1 / 64).tolist()}
        best = min(scaled, key=lambda c: abs(size(c) - target))
    if abs(size(best) / target - 1) > TOLERANCE:
        raise ValueError(f"no DiffusionModelUNet width within {TOLERANCE:.0%} of {target} parameters "
                         f"(closest: {best}, {size(best)})")
    return build_unet(image_channels, mask_classes, best, num_res_blocks)


def peer_velocity(unet: nn.Module, x: Tensor, t: Tensor, mask: Tensor, num_train_timesteps: int) -> Tensor:
    """The peer's velocity at our time ``t`` (B,) (0 noise, 1 data): MONAI timestep ``T (1 - t)``."""
    return unet(torch.cat([x, mask.to(x.dtype)], dim=1), (1 - t) * num_train_timesteps)


@torch.no_grad()
def peer_generate(unet: nn.Module, scheduler: RFlowScheduler, mask: Tensor, x0: Tensor, nfe: int) -> Tensor:
    """MONAI's rectified-flow sampling loop (``set_timesteps``, then ``step`` per timestep): ``nfe`` Euler steps."""
    scheduler.set_timesteps(nfe, device=x0.device)
    times = scheduler.timesteps
    following = torch.cat([times[1:], times.new_zeros(1)])
    x = x0
    for t, nxt in zip(times, following):
        v = unet(torch.cat([x, mask.to(x.dtype)], dim=1), t.expand(x.shape[0]))
        x, _ = scheduler.step(v, t, x, nxt)
    return x


class PeerTask:
    """MONAI rectified flow as a ``TrainTask``: one network ``unet``, one phase, EMA of ``unet``."""

    ema_net = "unet"
    best_metric = ("fm_loss", "min")

    def __init__(self, cfg: Config, dataset: MedicalDataset, target_params: int) -> None:
        generator_cfg = cfg.generator
        widths = [generator_cfg.base_channels * m for m in generator_cfg.channel_mult]
        self.cfg = cfg
        self.nets = nn.ModuleDict({"unet": matched_unet(target_params, dataset.num_channels, dataset.num_classes,
                                                        widths, generator_cfg.num_res_blocks)})
        self.scheduler = RFlowScheduler(num_train_timesteps=1000, use_discrete_timesteps=True,
                                        sample_method="logit-normal")

    def phases(self) -> list[Phase]:
        return [Phase("unet", ["unet"], self.loss)]

    def loss(self, nets: Nets, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        """MONAI's recipe: timesteps and noising from the scheduler, MSE to the velocity ``x1 - noise``."""
        x1, mask = batch["image"], batch["mask"]
        noise = torch.randn_like(x1)
        timesteps = self.scheduler.sample_timesteps(x1)
        x_t = self.scheduler.add_noise(x1, noise, timesteps)
        v = nets["unet"](torch.cat([x_t, mask.to(x_t.dtype)], dim=1), timesteps)
        loss = F.mse_loss(v.float(), (x1 - noise).float())
        return loss, {"loss/fm": loss.item()}

    @torch.no_grad()
    def validate(self, nets: Nets, loader: DataLoader, env: DistEnv) -> dict[str, float]:
        """Validation ``L_FM`` on the fixed noise and times ``MedDTFMTask.validate`` uses."""
        unet = nets["unet"].eval()
        loss = validation_fm_loss(
            lambda batch, ps: peer_velocity(unet, ps.x_t, ps.t, batch["mask"], self.scheduler.num_train_timesteps),
            loader, self.cfg.flow.val_batches, env.device, LinearPath())
        unet.train()
        return {"fm_loss": loss}

    def snapshot(self, nets: Nets, step: int, out: Path) -> None:
        """No preview images: the benchmark compares numbers."""

    def export_config(self) -> dict:
        unet = self.nets["unet"]
        return {"model": "monai-rflow", "channels": list(unet.block_out_channels), "in_channels": unet.in_channels,
                "out_channels": unet.out_channels}
