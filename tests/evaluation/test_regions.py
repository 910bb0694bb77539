"""BraTS regions (WT, TC, ET): Dice and HD95 on hand-made masks whose values are worked out by hand."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from meddtfm.evaluation.regions import BraTSRegions, region_masks, region_scores
from meddtfm.evaluation.runner import METRICS, Evaluation, Setup, needs_segmenter

CLASSES = ("NCR", "ED", "ET")


def _mask(pixels: dict[str, list[tuple[int, int]]], size: int = 16) -> torch.Tensor:
    """One-hot ``(3, size, size)`` with single pixels per class."""
    mask = torch.zeros(3, size, size)
    for name, points in pixels.items():
        for y, x in points:
            mask[CLASSES.index(name), y, x] = 1
    return mask


# target: NCR (2,2), ED (10,10), ET (12,2); prediction: NCR (2,2), ET (12,5), no ED
TARGET = _mask({"NCR": [(2, 2)], "ED": [(10, 10)], "ET": [(12, 2)]})
PRED = _mask({"NCR": [(2, 2)], "ET": [(12, 5)]})
# WT: target {(2,2), (10,10), (12,2)}, prediction {(2,2), (12,5)}: Dice 2*1/(2+3); surface distances
#   prediction -> target: 0, 3;  target -> prediction: 0, |(10,10)-(12,5)| = sqrt(29), 3
# TC: target {(2,2), (12,2)}, prediction {(2,2), (12,5)}: Dice 2*1/(2+2); distances 0, 3 both ways
# ET: target {(12,2)}, prediction {(12,5)}: Dice 0; distance 3
EXPECTED_DICE = {"wt": 0.4, "tc": 0.5, "et": 0.0}
EXPECTED_HD95 = {"wt": max(np.percentile([0, 3], 95), np.percentile([0, math.sqrt(29), 3], 95)),
                 "tc": np.percentile([0, 3], 95), "et": 3.0}


def test_regions_are_unions_of_classes():
    regions = region_masks(TARGET[None], CLASSES)[0]
    assert regions.shape == (3, 16, 16) and regions.dtype == torch.bool
    assert [int(r.sum()) for r in regions] == [3, 2, 1]  # WT = NCR+ED+ET, TC = NCR+ET, ET
    assert regions[1, 2, 2] and regions[1, 12, 2] and not regions[1, 10, 10]
    with_wt = torch.cat([TARGET, TARGET.amax(0, keepdim=True)])[None]  # data.whole_tumour adds a WT channel
    assert torch.equal(region_masks(with_wt, (*CLASSES, "WT")), region_masks(TARGET[None], CLASSES))
    with pytest.raises(ValueError, match="need the classes NCR, ED, ET; got lesion"):
        region_masks(TARGET[None, :1], ("lesion",))


def test_dice_and_hd95_by_hand():
    dice, hd95 = region_scores(region_masks(PRED[None], CLASSES), region_masks(TARGET[None], CLASSES))
    for r, region in enumerate(("wt", "tc", "et")):
        assert float(dice[0, r]) == pytest.approx(EXPECTED_DICE[region]), region
        assert float(hd95[0, r]) == pytest.approx(EXPECTED_HD95[region], abs=1e-4), region
    same_dice, same_hd95 = region_scores(region_masks(TARGET[None], CLASSES), region_masks(TARGET[None], CLASSES))
    assert torch.equal(same_dice, torch.ones(1, 3)) and torch.equal(same_hd95, torch.zeros(1, 3))


def test_absent_region_is_left_out_and_a_missed_one_scores_the_diagonal():
    target = _mask({"ED": [(5, 5)]})  # no core, no enhancing tumour
    nothing = torch.zeros(1, 3, 16, 16, dtype=torch.bool)
    dice, hd95 = region_scores(nothing, region_masks(target[None], CLASSES))
    assert float(dice[0, 0]) == 0.0 and float(hd95[0, 0]) == pytest.approx(math.hypot(16, 16))
    assert dice[0, 1:].isnan().all() and hd95[0, 1:].isnan().all()


class _Identity(nn.Module):
    """A "segmenter" whose logits are its input times 10: an image of +-1 per class is its own prediction."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        nn.init.zeros_(self.conv.weight)
        with torch.no_grad():
            self.conv.weight[:, :, 0, 0] = 10 * torch.eye(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _batch(fake: torch.Tensor, masks: torch.Tensor) -> dict:
    n = len(masks)
    return {"fake": fake, "target": masks * 2 - 1, "has_target": torch.ones(n, dtype=torch.bool), "mask": masks,
            "has_mask": torch.ones(n, dtype=torch.bool)}


def test_registered_metric_scores_runs_and_the_real_ceiling(tmp_path):
    assert "brats_regions" in METRICS.names() and needs_segmenter(["paired", "brats_regions"])
    assert not needs_segmenter(["paired", "frd"])
    second = _mask({"ED": [(5, 5)]})
    masks = torch.stack([TARGET, second])
    evaluation = Evaluation(Setup(("brats_regions",), ("flair", "t1", "t2"), CLASSES, tmp_path, _Identity()))
    evaluation.add_real(masks * 2 - 1, masks, torch.ones(2, dtype=torch.bool))
    fake = torch.stack([PRED, second]) * 2 - 1  # the second image is segmented perfectly: WT Dice 1, HD95 0
    out = evaluation.run([_batch(fake, masks)], "seed0")
    assert out["dice_wt/mean"] == pytest.approx((EXPECTED_DICE["wt"] + 1) / 2) and out["dice_wt/images"] == 2
    assert out["hd95_wt/mean"] == pytest.approx(EXPECTED_HD95["wt"] / 2, abs=1e-4)
    assert out["dice_tc/mean"] == pytest.approx(0.5) and out["dice_tc/images"] == 1  # only the first has a core
    assert out["dice_et/mean"] == 0.0 and out["hd95_et/mean"] == pytest.approx(3.0)
    reference = evaluation.reference()
    assert reference["dice_wt/mean"] == 1.0 and reference["hd95_wt/mean"] == 0.0 and reference["dice_et/images"] == 1
    assert any("WT = NCR+ED+ET" in note for note in evaluation.notes)


def test_other_classes_get_no_regions_but_a_note(tmp_path):
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, 0, 4:8, 4:8] = 1
    evaluation = Evaluation(Setup(("brats_regions",), ("gray",), ("lesion",), tmp_path, nn.Conv2d(1, 1, 1)))
    evaluation.add_real(masks * 2 - 1, masks, torch.ones(2, dtype=torch.bool))
    assert evaluation.run([_batch(masks * 2 - 1, masks)], "seed0") == {} and evaluation.reference() == {}
    assert evaluation.notes == ["brats_regions: not computed, the classes are lesion, not BraTS's NCR, ED, ET"]
    with pytest.raises(ValueError, match="brats_regions needs the evaluation segmenter"):
        Evaluation(Setup(("brats_regions",), ("gray",), CLASSES, tmp_path))


def test_accumulates_over_batches_and_skips_images_without_a_mask():
    scorer = BraTSRegions(_Identity(), CLASSES)
    scorer.update(PRED[None] * 2 - 1, TARGET[None], torch.tensor([True]))
    scorer.update(torch.stack([TARGET, PRED]) * 2 - 1, torch.stack([TARGET, PRED]), torch.tensor([True, False]))
    out = scorer.compute()
    assert scorer.count == 2 and out["dice_wt/mean"] == pytest.approx((0.4 + 1) / 2) and out["dice_et/images"] == 2
    with pytest.raises(ValueError, match="no image with a mask"):
        BraTSRegions(_Identity(), CLASSES).compute()
