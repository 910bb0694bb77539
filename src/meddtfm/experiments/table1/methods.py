"""What Table 1 compares: its four methods (rows) and Fig. 2's columns (the metric columns: ``..columns``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One row of Table 1: run folder / preset key, the paper's name, ``meddtfm train --model``, defining overrides."""

    key: str
    label: str
    model: str
    switch: tuple[str, ...] = ()


# "Ours (no DT)" is the generator with no teacher at all (docs/design.md): no L_DT and no reference path.
METHODS = (Method("pix2pixhd", "pix2pixHD", "pix2pixhd"), Method("medgan", "MedGAN", "medgan"),
           Method("nodt", "Ours (no DT)", "meddtfm", ("flow.dt_weights=[0,0,0,0]", "flow.reference=false")),
           Method("meddtfm", "Med-DT-FM", "meddtfm"))
# Fig. 2: the input mask, then these methods' images for it.
FIG2_METHODS = ("pix2pixhd", "medgan", "meddtfm")
FIG2_COLUMNS = ("input mask", "pix2pixHD", "MedGAN", "Ours (Med-DT-FM)")

