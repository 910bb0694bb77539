"""Safely loadable checkpoints, written atomically (``meddtfm.files.atomic_write``).

* Training state (``step_XXXXXXX.pt``): model, EMA and optimiser state dicts, RNG states, step and the
  resolved config, saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``:
  tensors and plain Python containers only, nothing that runs code on load.
* Weights for use (``*.safetensors``): one module's ``state_dict`` plus its config as JSON metadata;
  ``rebuild`` turns such a file back into its network.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from .files import atomic_write

_STEP_FILE = re.compile(r"step_(\d{7,})\.pt$")

Net = TypeVar("Net", bound=nn.Module)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit."""


def save_state(state: dict[str, Any], folder: str | Path, step: int, keep: int = 3) -> Path:
    """Write ``folder/step_{step:07d}.pt`` atomically, then delete all but the newest ``keep``."""
    folder = Path(folder)
    path = atomic_write(folder / f"step_{step:07d}.pt", lambda tmp: torch.save(state, tmp))
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
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def weights_config(path: str | Path) -> dict:
    """The config stored in a ``save_weights`` file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {}).get("config", "{}"))
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err


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


def rebuild(path: str | Path, build: Callable[[dict], Net], what: str = "network") -> tuple[Net, dict]:
    """The network saved in ``path`` by ``save_weights``, in eval mode, and its config.

    ``build(config)`` makes the untrained network; it may raise ``CheckpointError`` itself (a file of
    another kind). A ``KeyError`` / ``TypeError`` from it (metadata missing or not fitting ``what``) and
    a state dict that does not fit the network raise ``CheckpointError`` naming the file.
    """
    state, meta = load_weights(path)
    try:
        net = build(meta)
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: metadata does not describe a meddtfm {what} ({err!r})") from err
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the {what} its metadata describes ({err})") from err
    return net.eval(), meta
