"""What Table 1 compares: its four methods (rows) and Fig. 2's columns (the metric columns: ``..columns``)."""
from __future__ import annotations

from dataclasses import dataclass

from ...config.baselines import BASELINES


@dataclass(frozen=True)
class Method:
    """One row of Table 1: run folder / preset key, the paper's name, ``meddtfm train --model``, defining overrides."""

    key: str
    label: str
    model: str
    switch: tuple[str, ...] = ()


# Every GAN baseline of the catalogue, then "Ours (no DT)", the generator with no teacher at all
# (docs/design.md: no L_DT and no reference path), then Med-DT-FM.
METHODS = (*(Method(name, BASELINES[name].label, name) for name in BASELINES),
           Method("nodt", "Ours (no DT)", "meddtfm", ("flow.dt_weights=[0,0,0,0]", "flow.reference=false")),
           Method("meddtfm", "Med-DT-FM", "meddtfm"))
# Fig. 2: the input mask, then these methods' images for it.
FIG2_METHODS = (*BASELINES, "meddtfm")
FIG2_COLUMNS = ("input mask", *(BASELINES[name].label for name in BASELINES), "Ours (Med-DT-FM)")

