import math

import pytest
import torch
from monai.metrics import SSIMMetric

from meddtfm.evaluation.metrics import WANG_WEIGHTS, PairedMetrics, masked_ssim, ms_ssim_scales, ms_ssim_weights


def _images(b: int = 3, c: int = 2, s: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(b, c, s, s, generator=g), 5, 1, 2)
    return (smooth - smooth.amin()) / (smooth.amax() - smooth.amin()) * 2 - 1


def test_identical_images_score_one_and_infinite_psnr():
    x = _images()
    m = PairedMetrics(("t1", "t2"), 64)
    m.update(x, x)
    out = m.compute()
    for metric in ("ssim", "ms_ssim"):
        assert out[f"{metric}/t1"] == pytest.approx(1.0, abs=1e-5)
        assert out[f"{metric}/mean"] == pytest.approx(1.0, abs=1e-5)
    assert math.isinf(out["psnr/t1"]) and out["psnr/mean"] > 0 and math.isinf(out["psnr/mean"])


def test_more_noise_scores_lower():
    x = _images()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    scores = []
    for sigma in (0.05, 0.2, 0.5, 1.0):
        m = PairedMetrics(("t1", "t2"), 64)
        m.update((x + sigma * noise).clamp(-1, 1), x)
        scores.append(m.compute())
    for key in ("ssim/mean", "ms_ssim/mean", "psnr/mean", "ssim/t2"):
        values = [s[key] for s in scores]
        assert all(a > b for a, b in zip(values, values[1:])), (key, values)


def test_means_accumulate_over_batches_and_channels():
    x, y = _images(4), _images(4, seed=2)
    whole, parts = PairedMetrics(("a", "b"), 64), PairedMetrics(("a", "b"), 64)
    whole.update(x, y)
    parts.update(x[:1], y[:1])
    parts.update(x[1:], y[1:])
    a, b = whole.compute(), parts.compute()
    assert a == pytest.approx(b) and parts.count == 4
    assert a["ssim/mean"] == pytest.approx((a["ssim/a"] + a["ssim/b"]) / 2)


def test_images_are_compared_on_zero_one_with_data_range_one():
    """SSIM's luminance term is not shift-invariant: [-1, 1] with L = 2 would give another (wrong) value."""
    x, y = _images(), _images(seed=3)
    ours = PairedMetrics(("a", "b"), 64)
    ours.update(x, y)
    unit = SSIMMetric(2, data_range=1.0, reduction="none")((x[:, :1] + 1) / 2, (y[:, :1] + 1) / 2).mean()
    shifted = SSIMMetric(2, data_range=2.0, reduction="none")(x[:, :1], y[:, :1]).mean()
    assert ours.compute()["ssim/a"] == pytest.approx(float(unit), abs=1e-5)
    assert abs(float(shifted) - float(unit)) > 1e-3


def test_ms_ssim_scales_follow_the_image_size_and_are_stated():
    assert [ms_ssim_scales(s) for s in (32, 64, 128, 161, 175, 176, 256)] == [2, 3, 4, 4, 4, 5, 5]
    assert ms_ssim_weights(5) == WANG_WEIGHTS
    assert sum(ms_ssim_weights(3)) == pytest.approx(1.0)
    note = " ".join(PairedMetrics(("t1",), 64).notes)
    assert "3 scales" in note and "not comparable" in note
    assert "standard 5 scales" in " ".join(PairedMetrics(("t1",), 256).notes)


def test_bad_inputs_are_refused():
    m = PairedMetrics(("t1", "t2"), 64)
    with pytest.raises(ValueError, match="must both be"):
        m.update(_images(c=2), _images(c=2, s=32))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        m.update(_images() * 3, _images())
    with pytest.raises(ValueError, match="at least 11 px"):
        PairedMetrics(("t1",), 8)
    with pytest.raises(ValueError, match="no image pairs"):
        m.compute()


def test_masked_ssim_ignores_what_changed_inside_the_region():
    real = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fake = real.clone()
    fake[:, :, 24:40, 24:40] = -real[:, :, 24:40, 24:40]
    keep = torch.ones(2, 1, 64, 64, dtype=torch.bool)
    keep[:, :, 14:50, 14:50] = False  # the change dilated by more than the window's half-width
    assert torch.allclose(masked_ssim(fake, real, keep), torch.ones(2), atol=1e-5)
    assert (masked_ssim(fake, real, torch.ones_like(keep)) < 0.9).all()
    assert torch.isnan(masked_ssim(fake, real, torch.zeros_like(keep))).all()
    with pytest.raises(ValueError, match="do not fit"):
        masked_ssim(fake, real, keep[:, :, :32])
