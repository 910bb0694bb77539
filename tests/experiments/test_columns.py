"""``experiments.columns``: each dataset's columns (BraTS's regions, per-sequence FRD and SSIM), their summary keys
as the metrics write them, the metrics a preset may ask for, and the ceiling's lines."""
import torch
from torch import nn

from meddtfm.evaluation.metrics import PairedMetrics
from meddtfm.evaluation.regions import BraTSRegions
from meddtfm.experiments.columns import (
    METRIC_NAMES,
    ceiling_lines,
    choose_metrics,
    dataset_columns,
    resolved_columns,
    sequence_label,
)
from meddtfm.experiments.compare import mri_sequences
from meddtfm.experiments.presets import EvalSpec

BRATS = ("flair", "t1", "t1ce", "t2")
REGION_LABELS = ["Dice WT", "Dice TC", "Dice ET", "HD95 WT", "HD95 TC", "HD95 ET"]


def test_a_brats_dataset_has_the_regions_then_frd_and_ssim_per_sequence():
    columns = dataset_columns(4, BRATS, regions=True)
    base = resolved_columns(4)
    assert columns[:len(base)] == base
    labels = [c[0] for c in columns[len(base):]]
    assert labels == [*REGION_LABELS, "FRD FLAIR", "FRD T1", "FRD T1ce", "FRD T2",
                      "SSIM FLAIR", "SSIM T1", "SSIM T1ce", "SSIM T2"]
    by_label = {c[0]: c for c in columns}
    assert by_label["Dice WT"] == ("Dice WT", "dice_wt/mean", "brats_regions", "↑")
    assert by_label["HD95 ET"] == ("HD95 ET", "hd95_et/mean", "brats_regions", "↓")
    assert by_label["FRD T1ce"] == ("FRD T1ce", "frd/t1ce", "frd", "↓")
    assert by_label["SSIM FLAIR"] == ("SSIM FLAIR", "ssim/flair", "paired", "↑")


def test_lgg_and_isic_have_no_region_columns_and_one_channel_or_rgb_none_per_sequence():
    assert mri_sequences(("flair",)) == () and mri_sequences(("R", "G", "B")) == ()
    assert mri_sequences(("pre", "flair", "post")) == ("pre", "flair", "post") and mri_sequences(BRATS) == BRATS
    assert dataset_columns(4, mri_sequences(("flair",))) == resolved_columns(4)
    lgg = [c[0] for c in dataset_columns(4, ("pre", "flair", "post"))]
    assert not set(REGION_LABELS) & set(lgg) and lgg[-6:] == ["FRD pre", "FRD FLAIR", "FRD post", "SSIM pre",
                                                                "SSIM FLAIR", "SSIM post"]
    assert [sequence_label(s) for s in ("flair", "T1CE", "t2", "post")] == ["FLAIR", "T1ce", "T2", "post"]


def _everywhere() -> nn.Module:
    """A "segmenter" of 4-channel images that predicts every class at every pixel."""
    net = nn.Conv2d(4, 3, 1)
    nn.init.zeros_(net.weight)
    nn.init.constant_(net.bias, 10.0)
    return net


def test_the_columns_read_the_keys_the_metrics_write():
    masks = torch.zeros(2, 3, 32, 32)
    masks[:, :, 4:8, 4:8] = 1
    regions = BraTSRegions(_everywhere(), ("NCR", "ED", "ET"))
    regions.update(torch.zeros(2, 4, 32, 32), masks)
    paired = PairedMetrics(BRATS, 32)
    paired.update(torch.zeros(2, 4, 32, 32), torch.full((2, 4, 32, 32), 0.5))
    written = {**regions.compute(), **paired.compute()}
    keys = {c[1] for c in dataset_columns(4, BRATS, regions=True) if c[2] in ("brats_regions", "paired")}
    assert {k for k in keys if "avg" not in k} <= set(written)


def test_a_preset_may_ask_for_brats_regions():
    assert "brats_regions" in METRIC_NAMES
    on = choose_metrics(EvalSpec(metrics=["paired", "brats_regions"]), None)
    assert on.computed == ("paired", "brats_regions") and on.missing["dice"] == "off in this preset"
    off = choose_metrics(EvalSpec(metrics=["paired"]), None)
    assert off.missing["brats_regions"] == "off in this preset"


def test_the_ceiling_gives_the_regions_dice_and_hd95():
    reference = {"dice_present/mean": 0.8, "dice_wt/mean": 0.91, "dice_tc/mean": 0.85, "dice_et/mean": 0.77,
                 "hd95_wt/mean": 3.5, "hd95_tc/mean": 4.25, "hd95_et/mean": 5.0}
    assert ceiling_lines(reference, "test") == [
        "Dice (lesion-present classes) of the same U-Net on the real test images (the ceiling): 0.8.",
        "BraTS regions of the same U-Net on the real test images (the ceiling): Dice WT 0.91, TC 0.85, ET 0.77; "
        "HD95 (px) WT 3.5, TC 4.25, ET 5."]
    assert ceiling_lines({"dice_present/mean": 0.8}, "validation") == [
        "Dice (lesion-present classes) of the same U-Net on the real validation images (the ceiling): 0.8."]
    assert ceiling_lines({}, "test") == []
