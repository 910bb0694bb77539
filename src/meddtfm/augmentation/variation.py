"""Varied lesion masks: a synthetic training set drawn for the real masks redrawn would add little.

``MaskVariation`` turns a real one-hot mask ``(K, S, S)`` into a new one by, in this order, a left-right
flip (probability 1/2), a rotation by an angle in ``[-rotate, rotate]`` degrees and a zoom by a factor in
``[1 - scale, 1 + scale]`` (MONAI ``RandAffine``), an elastic deformation of ``elastic`` pixels (MONAI
``Rand2DElastic``), and a move of the whole lesion to a random place where at least ``IN_REGION`` of it
lies inside the anatomy (``region``: the brain or the skin), all with nearest-neighbour resampling so the
mask stays binary. Everything is drawn from one seed, so a mask's variation does not depend on its batch.

Example::

    >>> v = MaskVariation.parse("flip,rotate=15,scale=0.1,shift")
    >>> m = torch.zeros(1, 32, 32); m[0, 10:16, 12:20] = 1
    >>> out, changed = v.apply(m, torch.ones(32, 32, dtype=torch.bool), seed=0)
    >>> out.shape, bool(out.sum() > 0)
    (torch.Size([1, 32, 32]), True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from monai.transforms import Rand2DElastic, RandAffine
from monai.utils import convert_to_tensor
from torch import Tensor

IN_REGION = 0.95  # a moved lesion keeps at least this fraction of its pixels inside the region
SHIFT_TRIES = 32


@dataclass(frozen=True)
class MaskVariation:
    """How a real mask is varied; all zero / False: not at all (``parse("none")``)."""

    flip: bool = False
    rotate: float = 0.0  # largest |angle|, degrees
    scale: float = 0.0  # zoom factor drawn from [1 - scale, 1 + scale]
    elastic: float = 0.0  # displacement magnitude, pixels (0: off)
    shift: bool = False  # move the lesion within the region

    @classmethod
    def parse(cls, text: str) -> MaskVariation:
        """``"none"`` or comma-separated ``flip``, ``shift``, ``rotate=DEG``, ``scale=F``, ``elastic=PX``."""
        if text.strip() in ("", "none"):
            return cls()
        values: dict[str, float | bool] = {}
        known = {f.name: f.type for f in fields(cls)}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, _, value = part.partition("=")
            if key not in known:
                raise ValueError(f"unknown mask variation {key!r}: use {', '.join(known)} (e.g. "
                                 "flip,rotate=15,scale=0.1,elastic=3,shift) or none")
            if key in ("flip", "shift"):
                if value:
                    raise ValueError(f"mask variation {key} takes no value ({part!r})")
                values[key] = True
                continue
            try:
                number = float(value)
            except ValueError as err:
                raise ValueError(f"mask variation {part!r}: give {key}=NUMBER") from err
            if number < 0 or (key == "scale" and number >= 1):
                raise ValueError(f"mask variation {part!r}: must be >= 0" + (" and < 1" if key == "scale" else ""))
            values[key] = number
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        parts = [name for name in ("flip", "shift") if getattr(self, name)]
        parts += [f"{name}={getattr(self, name):g}" for name in ("rotate", "scale", "elastic") if getattr(self, name)]
        return ",".join(parts) or "none"

    @property
    def active(self) -> bool:
        return str(self) != "none"

    def apply(self, mask: Tensor, region: Tensor, seed: int) -> tuple[Tensor, bool]:
        """The varied ``mask`` (K, S, S) and whether it was changed; ``region`` (S, S) bool is where the lesion
        may go. A variation that would empty the mask gives the mask back unchanged."""
        if not self.active or not mask.any():
            return mask, False
        g = torch.Generator().manual_seed(seed)
        out = mask.float()
        if self.flip and torch.rand((), generator=g) < 0.5:
            out = out.flip(-1)
        state = int(torch.randint(0, 2**31 - 1, (), generator=g))
        if self.rotate or self.scale:
            affine = RandAffine(prob=1.0, rotate_range=(math.radians(self.rotate),),
                                scale_range=(self.scale, self.scale), mode="nearest", padding_mode="zeros")
            affine.set_random_state(state)
            out = convert_to_tensor(affine(out), track_meta=False).float()
        if self.elastic:
            size = out.shape[-1]
            elastic = Rand2DElastic(spacing=(max(2, size // 4),) * 2, magnitude_range=(self.elastic, self.elastic),
                                    prob=1.0, mode="nearest", padding_mode="zeros")
            elastic.set_random_state(state + 1)
            out = convert_to_tensor(elastic(out), track_meta=False).float()
        if self.shift:
            out = _shift_within(out, region, g)
        out = (out > 0.5).to(mask.dtype)
        if not out.any():
            return mask, False
        return out, not torch.equal(out, mask)


def _shift_within(mask: Tensor, region: Tensor, g: torch.Generator) -> Tensor:
    """``mask`` moved by a random whole-pixel offset that keeps it in the image and ``IN_REGION`` in ``region``
    (the first of ``SHIFT_TRIES`` draws that does; else unmoved)."""
    lesion = mask.any(0)
    if not lesion.any():
        return mask
    rows, cols = lesion.any(1).nonzero().flatten(), lesion.any(0).nonzero().flatten()
    size_h, size_w = lesion.shape
    dy_range = (-int(rows[0]), size_h - 1 - int(rows[-1]))
    dx_range = (-int(cols[0]), size_w - 1 - int(cols[-1]))
    total = lesion.sum()
    for _ in range(SHIFT_TRIES):
        dy = int(torch.randint(dy_range[0], dy_range[1] + 1, (), generator=g))
        dx = int(torch.randint(dx_range[0], dx_range[1] + 1, (), generator=g))
        moved = mask.roll((dy, dx), dims=(-2, -1))
        if (moved.any(0) & region).sum() >= IN_REGION * total:
            return moved
    return mask
