"""Atomic, safely loadable checkpoints.

* Training state (``step_XXXXXXX.pt``): model, EMA and optimiser state dicts, RNG states, step and the
  resolved config, saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``:
  tensors and plain Python containers only, nothing that runs code on load.
* Weights for use (``*.safetensors``): one module's ``state_dict`` plus its config as JSON metadata.

Every file is written to a temporary name in the same folder, flushed, then renamed with
``os.replace``, so a crash leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

_STEP_FILE = re.compile(r"step_(\d{7,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit."""


def _atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_state(state: dict[str, Any], folder: str | Path, step: int, keep: int = 3) -> Path:
    """Write ``folder/step_{step:07d}.pt`` atomically, then delete all but the newest ``keep``."""
    folder = Path(folder)
    path = _atomic(folder / f"step_{step:07d}.pt", lambda tmp: torch.save(state, tmp))
    for old in list_states(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_states(folder: str | Path) -> list[Path]:
    """Training-state files in ``folder``, oldest first."""
    folder = Path(folder)
    found = [p for p in folder.glob("step_*.pt") if _STEP_FILE.search(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(_STEP_FILE.search(p.name).group(1)))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training state with ``weights_only=True``; errors name the file."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: checkpoint does not exist") from err
    except Exception as err:  # truncated zip, pickle refused by weights_only, ...
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from err


def save_weights(module_state: dict[str, torch.Tensor], path: str | Path, config: dict | None = None) -> Path:
    """Write a state dict as safetensors (atomic), with ``config`` stored as JSON metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in module_state.items()}
    meta = {"config": json.dumps(config or {})}
    return _atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file written by ``save_weights``: ``(state_dict, config)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            config = json.loads((fh.metadata() or {}).get("config", "{}"))
        return load_file(str(path), device=str(device)), config
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err
