"""Mode B: synthetic images drawn from a checkpoint for the masks of a real split.

The interface between evaluation and any generator is ``Generate = (batch, seed) -> images``: ``batch``
is a collated batch of the dataset (``meddtfm.data.base``: ``image``, ``mask``, ``has_mask``,
``caption``, ``sample_id``; in reference mode also ``reference``, ``reference_mask``) and the result is
``(B, C, S, S)`` in [-1, 1]. The noise of a sample depends only on ``(seed, sample_id)``, through
``meddtfm.flow.sampling.sample_seed`` as in ``meddtfm sample --dataset``: same seed and settings, same images.

* ``meddtfm`` checkpoints (``meddtfm.synthesis``): ``noise`` mode is Eq. 7, one image per mask from
  the seed's noise. ``reference`` mode is Eq. 6: sample i gets its own mask (and caption) in the anatomy
  of sample i+1 (cyclically) of the split, inverted under that reference's mask to ``t0``. Its paired
  metrics compare with the reference (the anatomy source), not with the image the mask came from.
* GAN baseline checkpoints (``pix2pixhd``, ``medgan``: ``meddtfm.config.baselines.BASELINES``):
  ``G(mask, caption)``, deterministic, so every seed gives the same images; noise mode only.

``LOADERS`` holds, by the checkpoint's ``model``, how its weights become a ``Generate``: the names of
``meddtfm.training.tasks.GENERATORS``, every ``meddtfm train --model``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import CheckpointError
from ..flow.sampling import Guidance, sample_seed
from ..models.text import CaptionTokenizer
from ..registry import Registry
from ..synthesis import Synthesizer, load_generator, sampling_spec
from ..training.gan import BASELINES, load_baseline

Generate = Callable[[dict, int], Tensor]
Mode = Literal["noise", "reference"]


@dataclass(frozen=True)
class Sampling:
    """How a flow is sampled (``meddtfm sample``'s defaults; ``cfg_caption`` None: ``cfg_mask``); ``teacher``:
    the U-KAN file for reference mode, if it moved since training. A one-pass generator ignores them.
    ``solver`` auto and ``nfe`` None: ``synthesis.sampling_spec`` (Heun at 8 for a flow, a few-step model's own)."""

    nfe: int | None = None
    solver: str = "auto"
    cfg_mask: float = 2.0
    cfg_caption: float | None = None
    t0: float = 0.0
    teacher: str | None = None


Loader = Callable[[str | Path, str, Mode, torch.device, Sampling], tuple[Generate, dict]]  # path, model, ...


def checkpoint_model(path: str | Path) -> str:
    """The ``model`` recorded in a ``meddtfm train`` weights file (a name in ``LOADERS``)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {}).get("config", "{}")).get("model", "")
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err


def _flow(path: str | Path, model: str, mode: Mode, device: torch.device, sampling: Sampling) -> tuple[Generate, dict]:
    """A Med-DT-FM checkpoint through ``Synthesizer``: Eq. 7 (noise) or Eq. 6 (reference), noise from the seed."""
    net, meta = load_generator(path, teacher=sampling.teacher, need_teacher=mode == "reference", device=device)
    cfg_mask, t0 = sampling.cfg_mask, sampling.t0
    cfg_caption = cfg_mask if sampling.cfg_caption is None else sampling.cfg_caption
    spec = sampling_spec(meta.few_step, path, sampling.solver, sampling.nfe)
    synth = Synthesizer(net, meta, spec, Guidance(cfg_mask, cfg_caption))
    start = "invert" if meta.few_step is None else "noise"  # a few-step model cannot invert: noise to t0

    def generate(batch: dict, seed: int) -> Tensor:
        seeds = [sample_seed(seed, name) for name in batch["sample_id"]]
        captions = list(batch["caption"]) if meta.tokenizer is not None else None  # no caption path: none
        if mode == "noise":
            return synth.noise_based(seeds, batch["mask"], captions, batch["has_mask"]).x
        return synth.reference_guided(batch["reference"], seeds, batch["mask"], captions, batch["has_mask"],
                                      ref_masks=batch["reference_mask"], t0=t0, start=start).x

    few_step = {"few_step": meta.few_step.to_meta()} if meta.few_step else {}
    return generate, {"model": model, "mode": mode, "solver": spec.method, "nfe": spec.nfe, **few_step,
                      "cfg_mask": cfg_mask, "cfg_caption": cfg_caption, **({"t0": t0} if mode == "reference" else {}),
                      "data": meta.data, "channel_names": list(meta.channel_names),
                      "class_names": list(meta.class_names)}


def _translation(path: str | Path, model: str, mode: Mode, device: torch.device,
                 sampling: Sampling) -> tuple[Generate, dict]:
    """A GAN baseline checkpoint: ``G(mask, caption)`` in one pass, the same image for every seed."""
    if mode != "noise":
        raise ValueError(f"{path}: the {model} baseline translates masks; reference mode is for Med-DT-FM only")
    net, meta = load_baseline(path)
    net = net.to(device)
    tokenizer = CaptionTokenizer.from_state(meta["tokenizer"]) if meta.get("tokenizer") else None

    def translate(batch: dict, seed: int) -> Tensor:
        tokens = tokenizer.encode(list(batch["caption"]), meta["text"]["max_len"]).to(device) if tokenizer else None
        return net.generate(batch["mask"].float().to(device), tokens).clamp(-1, 1)

    return translate, {"model": model, "mode": mode, "deterministic": True, "data": meta["data"],
                       "channel_names": list(meta["channel_names"]), "class_names": list(meta["class_names"])}


LOADERS: Registry[Loader] = Registry("generator")
for _name in BASELINES:
    LOADERS.add(_name, BASELINES.entry(_name).description, _translation)
LOADERS.add("meddtfm", "Med-DT-FM, sampled noise-based (Eq. 7) or reference-guided (Eq. 6)", _flow)


def load_generate(path: str | Path, mode: Mode, device: torch.device, *, nfe: int | None = None, solver: str = "auto",
                  cfg_mask: float = 2.0, cfg_caption: float | None = None, t0: float = 0.0,
                  teacher: str | None = None) -> tuple[Generate, dict]:
    """``generate(batch, seed)`` for the checkpoint in ``path`` and a description of its settings.

    Defaults are ``meddtfm sample``'s; ``cfg_caption`` None: ``cfg_mask``.
    """
    model = checkpoint_model(path)
    if model not in LOADERS:
        raise CheckpointError(f"{path}: holds model {model!r}; expected a `meddtfm train` generator "
                              f"({', '.join(LOADERS)})")
    return LOADERS[model](path, model, mode, device, Sampling(nfe, solver, cfg_mask, cfg_caption, t0, teacher))


class WithReference(Dataset):
    """Sample i of ``dataset`` plus ``reference`` / ``reference_mask``: image and mask of sample i+1 (mod N)."""

    def __init__(self, dataset: Dataset) -> None:
        if len(dataset) < 2:
            raise ValueError("reference mode needs at least 2 samples in the split")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample, ref = self.dataset[index], self.dataset[(index + 1) % len(self.dataset)]
        return {**sample, "reference": ref["image"], "reference_mask": ref["mask"]}


def generated_batches(loader: DataLoader, generate: Generate, seed: int, mode: Mode,
                      on_real: Callable[[dict], None] | None = None, average_of: int = 0,
                      deterministic: bool = False) -> Iterator[dict]:
    """The runner's batches (``runner`` module doc) for one seed; ``on_real(batch)`` sees each data batch first.

    Noise mode pairs a synthetic image with the real image only where that image's own mask conditioned
    it (``has_mask``): an image without a mask (most of ISIC 2019) was drawn from a null or caption-only
    condition, and its "pair" would be an unrelated photo. Reference mode pairs it with its reference.
    ``average_of = K > 1`` adds ``average_of`` and ``fake_average``, the pixel mean of K draws
    (seeds ``seed + k * 1000003``, draw 0 being ``fake``): the conditional-mean estimate that pixel
    metrics reward in a regressor (Dohmen et al., arXiv 2408.06075). A ``deterministic`` generator's
    K draws are one image, so its average is ``fake`` itself, not drawn again.
    """
    for batch in loader:
        if on_real is not None:
            on_real(batch)
        with torch.no_grad():
            fake = generate(batch, seed).detach().float().cpu()
            draws = [fake] if deterministic else [fake] + [generate(batch, seed + k * 1_000_003).detach().float().cpu()
                                                           for k in range(1, average_of)]
        reference = mode == "reference"
        out = {"fake": fake, "target": batch["reference"] if reference else batch["image"],
               "has_target": torch.ones(len(fake), dtype=torch.bool) if reference else batch["has_mask"].bool(),
               "mask": batch["mask"], "has_mask": batch["has_mask"]}
        if average_of > 1:
            out.update(fake_average=torch.stack(draws).mean(0), average_of=average_of)
        yield out
