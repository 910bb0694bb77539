import importlib.util
import math
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from meddtfm.evaluation.distribution import (
    ImageSet,
    MissingDependencyError,
    fid_kid,
    frd,
    inception_views,
    require_frd,
    to_uint8,
)
from meddtfm.evaluation.inception import FIDInceptionV3, InceptionWeightsError, load_inception

HAS_FRD = importlib.util.find_spec("frd_score") is not None and importlib.util.find_spec("radiomics") is not None


class PooledFeatures(nn.Module):
    """A cheap stand-in for the Inception: fixed random projection of 4x4-pooled pixels to 32 features."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(3 * 16, 32, generator=torch.Generator().manual_seed(0)) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        return torch.relu(nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1) @ self.proj)


def _images(n: int, c: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.rand(n, c, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale


def test_uint8_mapping_and_views():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    assert to_uint8(x).flatten().tolist() == [0, 128, 255, 255]
    mri = inception_views(_images(2, 4, 0), ("t1", "t1ce", "t2", "flair"))
    assert list(mri) == ["t1", "t1ce", "t2", "flair"] and mri["t2"].shape == (2, 3, 16, 16)
    assert torch.equal(mri["t2"][:, 0], mri["t2"][:, 2])
    rgb = inception_views(_images(2, 3, 0), ("R", "G", "B"))
    assert list(rgb) == ["RGB"] and rgb["RGB"].dtype == torch.uint8


def test_fid_kid_zero_for_the_same_set_and_positive_for_another():
    net = PooledFeatures()
    real, same, other = (ImageSet(("t1", "t2"), net) for _ in range(3))
    x = _images(12, 2, 1)
    real.add(x[:6])
    real.add(x[6:])
    same.add(x)
    other.add(_images(12, 2, 2, scale=0.3) - 0.6)
    out_same, out_other = fid_kid(real, same), fid_kid(real, other)
    assert set(out_same) == {"fid/t1", "fid/t2", "fid/mean", "kid/t1", "kid/t2", "kid/mean"}
    assert abs(out_same["fid/mean"]) < 1e-4 * out_other["fid/mean"]
    assert abs(out_same["kid/mean"]) < 0.1 * out_other["kid/mean"]  # unbiased: noise around 0 for the same set
    assert fid_kid(real, other) == out_other  # KID subsets come from a fixed seed


def test_fid_needs_two_images():
    net = PooledFeatures()
    real, fake = ImageSet(("gray",), net), ImageSet(("gray",), net)
    real.add(_images(3, 1, 0))
    fake.add(_images(1, 1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        fid_kid(real, fake)


def test_missing_inception_weights_name_the_file_and_the_option(tmp_path):
    for path in (None, tmp_path / "absent.pth"):
        with pytest.raises(InceptionWeightsError) as err:
            load_inception(path)
        assert "pt_inception-2015-12-05-6726825d.pth" in str(err.value) and "--inception-weights" in str(err.value)


def test_other_networks_are_refused(tmp_path):
    torchvision_like = {"fc.weight": torch.zeros(1000, 2048), "AuxLogits.fc.weight": torch.zeros(1000, 768)}
    torch.save(torchvision_like, tmp_path / "tv.pth")
    with pytest.raises(InceptionWeightsError, match="not the FID InceptionV3"):
        load_inception(tmp_path / "tv.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(InceptionWeightsError, match="cannot read"):
        load_inception(tmp_path / "junk.pth")


def test_random_init_inception_loads_and_extracts(tmp_path, caplog):
    """Plumbing only: a RANDOMLY initialised FIDInceptionV3 saved to tmp_path, loaded offline, run on 2 images.

    Its features mean nothing; the real weights file is never available to the tests.
    """
    torch.save(FIDInceptionV3().state_dict(), tmp_path / "random.pth")
    net = load_inception(tmp_path / "random.pth")
    assert not net.reference_weights and "not comparable" in caplog.text
    with torch.no_grad():
        features = net(to_uint8(_images(2, 3, 0)))
    assert features.shape == (2, 2048) and features.dtype == torch.float32 and torch.isfinite(features).all()
    with pytest.raises(ValueError, match="uint8"):
        net(_images(2, 3, 0))


def test_image_set_writes_one_grey_png_per_image_and_channel(tmp_path):
    images = ImageSet(("t1", "t2"), frd_dir=tmp_path)
    images.add(_images(2, 2, 0))
    images.add(_images(1, 2, 1))
    assert [p.name for p in images.files["t2"]] == ["0000000.png", "0000001.png", "0000002.png"]
    with Image.open(images.files["t1"][2]) as im:
        assert im.mode == "L" and im.size == (16, 16)


@pytest.mark.skipif(not HAS_FRD, reason="FRD needs frd-score and pyradiomics-bhklab: pip install -e '.[eval]'")
def test_frd_is_lower_for_a_closer_set(tmp_path):
    real, near, far = (ImageSet(("gray",), frd_dir=tmp_path / n) for n in ("real", "near", "far"))
    real.add(_images(5, 1, 0) * 0.5)
    near.add(_images(5, 1, 1) * 0.5)
    far.add(_images(5, 1, 2) * 0.05)
    close, distant = frd(real, near, "v0", num_workers=1), frd(real, far, "v0", num_workers=1)
    assert set(close) == {"frd/gray", "frd/mean"} and math.isfinite(close["frd/gray"])
    assert close["frd/gray"] < distant["frd/gray"]


@pytest.mark.skipif(not HAS_FRD, reason="FRD needs frd-score and pyradiomics-bhklab: pip install -e '.[eval]'")
def test_frd_per_mri_sequence_and_their_mean(tmp_path):
    """BraTS: one FRD per sequence (``frd/flair`` ...) and ``frd/mean`` over them; a sequence that differs more
    scores higher."""
    sequences = ("flair", "t1", "t1ce", "t2")
    real, fake = (ImageSet(sequences, frd_dir=tmp_path / n) for n in ("real", "fake"))
    real.add(_images(5, 4, 0) * 0.5)
    fake_images = _images(5, 4, 1) * 0.5
    fake_images[:, 3] *= 0.1  # t2 far off
    fake.add(fake_images)
    out = frd(real, fake, "v0", num_workers=1)
    assert list(out) == [f"frd/{s}" for s in sequences] + ["frd/mean"]
    assert out["frd/mean"] == pytest.approx(sum(out[f"frd/{s}"] for s in sequences) / 4)
    assert out["frd/t2"] == max(out[f"frd/{s}"] for s in sequences)


def test_frd_without_its_packages_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "frd_score", None)  # makes `import frd_score` fail
    with pytest.raises(MissingDependencyError, match="pip install frd-score pyradiomics-bhklab"):
        require_frd()
