import math

import pytest
import torch
from torch import nn

from meddtfm.evaluation.consistency import MaskConsistency, SegmenterError, load_eval_segmenter

from .conftest import segmenter_checkpoint


class ThresholdSegmenter(nn.Module):
    """Predicts class k where channel k of the image is positive (a stand-in with known answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, 10.0, -10.0) + self.anchor


def _masks() -> torch.Tensor:
    m = torch.zeros(2, 2, 16, 16)
    m[0, 0, 2:8, 2:8] = 1
    m[1, 1, 8:12, 4:12] = 1
    return m


def test_perfect_and_shifted_predictions():
    masks = _masks()
    metric = MaskConsistency(ThresholdSegmenter(), ("NCR", "ED"))
    metric.update(masks * 2 - 1, masks)
    assert metric.compute() == {"dice/NCR": 1.0, "dice/ED": 1.0, "dice/mean": 1.0,
                                "iou/NCR": 1.0, "iou/ED": 1.0, "iou/mean": 1.0,
                                "dice_present/NCR": 1.0, "dice_present/ED": 1.0, "dice_present/mean": 1.0,
                                "iou_present/NCR": 1.0, "iou_present/ED": 1.0, "iou_present/mean": 1.0}
    shifted = MaskConsistency(ThresholdSegmenter(), ("NCR", "ED"))
    shifted.update(masks.roll(3, dims=-1) * 2 - 1, masks)
    out = shifted.compute()
    # image 0, class 0: 6x6 square shifted by 3 -> overlap 18, Dice 36/72; class 1 absent and not predicted -> 1
    assert out["dice/NCR"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["iou/NCR"] == pytest.approx((18 / 54 + 1.0) / 2)


def test_lesion_painted_where_none_was_asked_scores_zero():
    masks = _masks()
    images = torch.ones_like(masks)  # every class predicted everywhere
    metric = MaskConsistency(ThresholdSegmenter(), ("NCR", "ED"))
    metric.update(images, masks)
    out = metric.compute()
    assert out["dice/NCR"] == pytest.approx((2 * 36 / (256 + 36) + 0.0) / 2)


def test_present_scores_average_only_over_images_whose_mask_has_the_class():
    masks = torch.zeros(3, 3, 16, 16)  # classes NCR, ED, ET; ET is in no mask
    masks[0, 0, 2:8, 2:8] = 1  # image 0: NCR only
    masks[1, 1, 8:12, 4:12] = 1  # image 1: ED only
    masks[2, 0, 2:8, 2:8] = 1  # image 2: NCR only
    images = -torch.ones_like(masks)
    images[0, 0] = masks[0, 0].roll(3, dims=-1) * 2 - 1  # NCR drawn 3 px off: overlap 18 of 36 + 36
    images[1, 0, 0:4, 0:4] = 1  # NCR painted where none was asked for
    images[1, 1] = masks[1, 1] * 2 - 1  # ED exact
    images[2, 0] = masks[2, 0] * 2 - 1  # NCR exact
    metric = MaskConsistency(ThresholdSegmenter(), ("NCR", "ED", "ET"))
    metric.update(images[:2], masks[:2])
    metric.update(images[2:], masks[2:])
    out = metric.compute()
    # every image: NCR (0.5 + 0 + 1) / 3, ED (1 + 1 + 1) / 3 (absent and not painted: 1), ET 1 everywhere
    assert out["dice/NCR"] == pytest.approx(1.5 / 3) and out["dice/ED"] == 1.0 and out["dice/ET"] == 1.0
    assert out["dice/mean"] == pytest.approx((0.5 + 1 + 1) / 3)
    # present: NCR over images 0 and 2, ED over image 1, ET never present -> NaN, left out of the mean
    assert out["dice_present/NCR"] == pytest.approx((0.5 + 1.0) / 2) and out["dice_present/ED"] == 1.0
    assert math.isnan(out["dice_present/ET"]) and out["dice_present/mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["iou_present/NCR"] == pytest.approx((18 / 54 + 1.0) / 2) and out["iou_present/ED"] == 1.0
    assert math.isnan(out["iou_present/ET"]) and out["iou_present/mean"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_samples_without_mask_are_skipped():
    masks = _masks()
    metric = MaskConsistency(ThresholdSegmenter(), ("NCR", "ED"))
    metric.update(-torch.ones_like(masks), masks, has_mask=torch.tensor([False, False]))
    assert metric.count == 0
    with pytest.raises(ValueError, match="no image with a mask"):
        metric.compute()


def test_unet_loads_and_ukan_teacher_is_refused(tmp_path):
    unet = segmenter_checkpoint(tmp_path / "unet.safetensors", ("t1", "t2"), ("NCR", "ED"))
    net = load_eval_segmenter(unet, 2, ("NCR", "ED"), ("t1", "t2"))
    assert net(torch.zeros(1, 2, 32, 32)).shape == (1, 2, 32, 32) and not net.training
    ukan = segmenter_checkpoint(tmp_path / "ukan.safetensors", ("t1", "t2"), ("NCR", "ED"), model="ukan")
    with pytest.raises(SegmenterError, match="teacher") as err:
        load_eval_segmenter(ukan, 2, ("NCR", "ED"))
    assert "pretrain-encoder --model unet" in str(err.value)


def test_mismatched_segmenter_is_refused(tmp_path):
    unet = segmenter_checkpoint(tmp_path / "unet.safetensors", ("t1", "t2"), ("NCR", "ED"))
    with pytest.raises(SegmenterError, match="classes"):
        load_eval_segmenter(unet, 2, ("lesion",))
    with pytest.raises(SegmenterError, match="2-channel"):
        load_eval_segmenter(unet, 3, ("NCR", "ED"))


def test_another_resolution_or_split_than_trained_is_refused(tmp_path):
    from meddtfm.config import DataConfig, to_dict

    trained = DataConfig(split_seed=3, test_fraction=0.2)
    unet = segmenter_checkpoint(tmp_path / "unet.safetensors", ("t1", "t2"), ("NCR", "ED"), data=trained)
    load_eval_segmenter(unet, 2, ("NCR", "ED"), ("t1", "t2"), trained.resolution)
    load_eval_segmenter(unet, 2, ("NCR", "ED"), data=to_dict(DataConfig(split_seed=3, test_fraction=0.2, root="/x")))
    with pytest.raises(SegmenterError, match=f"data.resolution is {trained.resolution} in the evaluation U-Net .* "
                                             f"but {trained.resolution // 2} in the evaluated data"):
        load_eval_segmenter(unet, 2, ("NCR", "ED"), ("t1", "t2"), trained.resolution // 2)
    other = to_dict(DataConfig(split_seed=4, test_fraction=0.2, val_fraction=0.3))
    with pytest.raises(SegmenterError) as err:
        load_eval_segmenter(unet, 2, ("NCR", "ED"), data=other)
    assert "data.split_seed is 3 in the evaluation U-Net" in str(err.value) and "but 4 in the evaluated data" in str(
        err.value) and "data.val_fraction is 0.1" in str(err.value) and "--model unet" in str(err.value)


def test_a_segmenter_that_records_no_split_is_refused(tmp_path):
    from meddtfm.config import DataConfig, to_dict

    unet = segmenter_checkpoint(tmp_path / "unet.safetensors", ("t1", "t2"), ("NCR", "ED"), data={})
    with pytest.raises(SegmenterError, match="records no data.split_seed"):
        load_eval_segmenter(unet, 2, ("NCR", "ED"), data=to_dict(DataConfig()))
