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
* ``pix2pixhd`` / ``medgan`` checkpoints (``meddtfm.training.gan``): ``G(mask, caption)``, deterministic,
  so every seed gives the same images; noise mode only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, Literal

import torch
from safetensors import safe_open
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import CheckpointError

Generate = Callable[[dict, int], Tensor]
Mode = Literal["noise", "reference"]


def checkpoint_model(path: str | Path) -> str:
    """The ``model`` recorded in a ``meddtfm train`` weights file (meddtfm | pix2pixhd | medgan)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {}).get("config", "{}")).get("model", "")
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err


def load_generate(path: str | Path, mode: Mode, device: torch.device, *, nfe: int = 8, solver: str = "heun",
                  cfg_mask: float = 2.0, cfg_caption: float | None = None, t0: float = 0.0,
                  teacher: str | None = None) -> tuple[Generate, dict]:
    """``generate(batch, seed)`` for the checkpoint in ``path`` and a description of its settings.

    Defaults are ``meddtfm sample``'s; ``cfg_caption`` None: ``cfg_mask``.
    """
    model = checkpoint_model(path)
    if model == "meddtfm":
        from ..flow.sampling import Guidance, SolverSpec, sample_seed
        from ..synthesis import Synthesizer, load_generator

        net, meta = load_generator(path, teacher=teacher, need_teacher=mode == "reference", device=device)
        cfg_caption = cfg_mask if cfg_caption is None else cfg_caption
        synth = Synthesizer(net, meta, SolverSpec(method=solver, nfe=nfe), Guidance(cfg_mask, cfg_caption))

        def generate(batch: dict, seed: int) -> Tensor:
            seeds = [sample_seed(seed, name) for name in batch["sample_id"]]
            captions = list(batch["caption"]) if meta.tokenizer is not None else None  # no caption path: none
            if mode == "noise":
                return synth.noise_based(seeds, batch["mask"], captions, batch["has_mask"]).x
            return synth.reference_guided(batch["reference"], seeds, batch["mask"], captions, batch["has_mask"],
                                          ref_masks=batch["reference_mask"], t0=t0).x

        return generate, {"model": model, "mode": mode, "solver": solver, "nfe": nfe, "cfg_mask": cfg_mask,
                          "cfg_caption": cfg_caption, **({"t0": t0} if mode == "reference" else {}), "data": meta.data,
                          "channel_names": list(meta.channel_names), "class_names": list(meta.class_names)}
    if model in ("pix2pixhd", "medgan"):
        if mode != "noise":
            raise ValueError(f"{path}: the {model} baseline translates masks; reference mode is for Med-DT-FM only")
        from ..models.text import CaptionTokenizer
        from ..training.gan import load_baseline

        net, meta = load_baseline(path)
        net = net.to(device)
        tokenizer = CaptionTokenizer.from_state(meta["tokenizer"]) if meta.get("tokenizer") else None

        def translate(batch: dict, seed: int) -> Tensor:
            tokens = tokenizer.encode(list(batch["caption"]), meta["text"]["max_len"]).to(device) if tokenizer else None
            return net.generate(batch["mask"].float().to(device), tokens).clamp(-1, 1)

        return translate, {"model": model, "mode": mode, "deterministic": True, "data": meta["data"],
                           "channel_names": list(meta["channel_names"]), "class_names": list(meta["class_names"])}
    raise CheckpointError(f"{path}: holds model {model!r}; expected a `meddtfm train` generator "
                          "(meddtfm, pix2pixhd or medgan)")


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
    ``average_of = K > 1`` adds ``average_of`` and ``fake_average``, the pixel mean of K draws (seeds ``seed + k * 1000003``,
    draw 0 being ``fake``): the conditional-mean estimate that pixel metrics reward in a regressor
    (Dohmen et al., arXiv 2408.06075). A ``deterministic`` generator's K draws are one image, so its
    average is ``fake`` itself, not drawn again.
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
