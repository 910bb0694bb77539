"""What Table 1 compares and reports: its four methods (rows) and its metric columns."""
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
# Table column, summary key, the metric of meddtfm.evaluation.runner.METRICS that computes it, better.
# Dice is on the lesion-present classes (an absent class predicted empty would score 1); SSIM and PSNR also
# of the average of K draws (EvalSpec.average_of), the fair comparison of a sampler with a regressor.
COLUMNS = (("FRD", "frd/mean", "frd", "↓"), ("FID", "fid/mean", "fid", "↓"), ("SSIM", "ssim/mean", "paired", "↑"),
           ("SSIM avg-K", "ssim_avg{k}/mean", "paired", "↑"), ("MS-SSIM", "ms_ssim/mean", "paired", "↑"),
           ("PSNR", "psnr/mean", "paired", "↑"), ("PSNR avg-K", "psnr_avg{k}/mean", "paired", "↑"),
           ("Dice", "dice_present/mean", "dice", "↑"))
# Fig. 2: the input mask, then these methods' images for it.
FIG2_METHODS = (*BASELINES, "meddtfm")
FIG2_COLUMNS = ("input mask", *(BASELINES[name].label for name in BASELINES), "Ours (Med-DT-FM)")


def resolved_columns(average_of: int) -> list[tuple[str, str, str, str]]:
    """``COLUMNS`` with K filled in: ``SSIM avg-4`` reads ``ssim_avg4/mean``."""
    return [(label.replace("-K", f"-{average_of}"), key.format(k=average_of), metric, better)
            for label, key, metric, better in COLUMNS]
