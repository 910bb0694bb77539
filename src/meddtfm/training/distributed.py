"""Devices and data parallelism: torchrun environment, device choice, resumable sharded sampling."""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA (this process's local GPU) when present, else the CPU."""
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={preference} but CUDA is not available on this machine")
    return device


def init_distributed(preference: str = "auto") -> DistEnv:
    """Join the process group that ``torchrun`` describes (NCCL on GPUs, gloo on CPU), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistEnv(rank, world, device)


@contextlib.contextmanager
def distributed_session(preference: str = "auto") -> Iterator[DistEnv]:
    """``init_distributed`` for the length of a command; on success all ranks meet, then leave the group.

    Without the final barrier a rank that finishes early (no checkpoint to write) tears down its
    gloo pairs while rank 0 still uses them, and the C++ side aborts the process.
    """
    env = init_distributed(preference)
    try:
        yield env
        if env.distributed:
            dist.barrier()
    finally:
        if env.distributed and dist.is_initialized():
            dist.destroy_process_group()


def mean_across_ranks(values: dict[str, float], env: DistEnv) -> dict[str, float]:
    """Average scalar logs over processes (identity when running alone)."""
    if not env.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return {k: float(v) / env.world_size for k, v in zip(keys, t.tolist())}


def to_device(batch: dict, device: torch.device) -> dict:
    """Move a sample dict's tensors to ``device`` (strings and numbers stay as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def head_of(batch: dict, n: int = 4) -> dict:
    """The first ``n`` samples of a batch dict, tensors on the CPU (a preview kept across steps)."""
    return {k: v[:n].cpu() if isinstance(v, torch.Tensor) else v[:n] for k, v in batch.items()}


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every process when it is True on at least one (keeps ranks stopping together)."""
    if not env.distributed:
        return flag
    t = torch.tensor([float(flag)], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class ShardedSampler(Sampler[int]):
    """Seeded shuffle per epoch, sharded over ranks, resumable mid-epoch.

    Epoch ``e`` is ``randperm(n, generator=seed + e)``, truncated to a multiple of ``world_size``
    (like ``DistributedSampler(drop_last=True)``) and strided by rank. ``set_epoch(e, skip)`` drops
    the first ``skip`` indices of this rank's shard, so a resumed run sees exactly the samples an
    uninterrupted one would.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True) -> None:
        if length < world_size:
            raise ValueError(f"{length} samples cannot be sharded over {world_size} processes")
        self.length, self.rank, self.world_size = length, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    @property
    def per_rank(self) -> int:
        return self.length // self.world_size

    def __len__(self) -> int:
        return self.per_rank - self.skip

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.length)
        shard = order[: self.per_rank * self.world_size][self.rank::self.world_size]
        return iter(shard[self.skip:].tolist())


def batches_per_epoch(sampler: ShardedSampler, batch_size: int) -> int:
    """Full batches one rank draws per epoch (the trainer drops the last incomplete one)."""
    return max(math.floor(sampler.per_rank / batch_size), 1)
