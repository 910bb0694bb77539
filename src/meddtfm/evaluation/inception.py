"""The FID InceptionV3 (TensorFlow graph ``inception-2015-12-05``), loaded offline from a local file.

FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) are only comparable across papers when the
2048-d pool features come from this exact network, fed the way TensorFlow fed it: uint8 RGB, bilinear
resize to 299 x 299 with TF1's sampling grid (no half-pixel offset, no antialiasing), then
``(x - 128) / 128``. The architecture and the forward pass are those of torch-fidelity's
``FeatureExtractorInceptionV3`` (Apache-2.0; itself torchvision's Inception3 patched for TF: average
pools exclude padding, the last block max-pools), so its state-dict keys load unchanged. torch-fidelity
is not imported: it needs torchvision, and on a CPU-only torch a CUDA torchvision wheel cannot be imported.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid, release ``fid_weights``) or
``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity, release v0.2.0), the same network.
Nothing is downloaded; the sha256 of the file is checked against the prefix in those names.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

REFERENCE_SHA256_PREFIX = "6726825d"
WEIGHTS_HELP = (
    "FID and KID need the FID InceptionV3 weights as a local file: pt_inception-2015-12-05-6726825d.pth "
    "(pytorch-fid's release 'fid_weights') or weights-inception-2015-12-05-6726825d.pth (torch-fidelity's "
    "release v0.2.0); both hold the TensorFlow 'inception-2015-12-05' graph ported to PyTorch. Fetch it on a "
    "machine with internet access and pass --inception-weights FILE (nothing is downloaded here), or leave "
    "fid out of --metrics. torchvision's ImageNet inception_v3 weights are a different network and are refused."
)


class InceptionWeightsError(ValueError):
    """Missing or wrong InceptionV3 weights for FID / KID."""


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    """TF's 3 x 3 average pool: padded zeros are not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b (``max_pool=False``: TF average pool) and Mixed_7c (``max_pool=True``)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3), self.branch_pool(pool)], 1)


def resize_like_tf1(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of ``(B, C, H, W)`` float32 to ``size x size`` on TF1's grid: source = dest * in / out."""
    def grid(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        pos = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.float()

    ylo, yhi, dy = grid(x.shape[2])
    xlo, xhi, dx = grid(x.shape[3])
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    top = top[:, :, :, xlo] + (top[:, :, :, xhi] - top[:, :, :, xlo]) * dx.view(1, 1, 1, size)
    bottom = bottom[:, :, :, xlo] + (bottom[:, :, :, xhi] - bottom[:, :, :, xlo]) * dx.view(1, 1, 1, size)
    return top + (bottom - top) * dy.view(1, 1, size, 1)


class FIDInceptionV3(nn.Module):
    """``(B, 3, H, W)`` uint8 RGB -> ``(B, 2048)`` float32 pool features (``fc``: in the file, unused)."""

    num_features = 2048

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)
        self.reference_weights = False  # set by load_inception: the sha256 matches the published file

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FIDInceptionV3 expects (B, 3, H, W) uint8 images, got {x.dtype} {tuple(x.shape)}")
        x = (resize_like_tf1(x.float(), 299) - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, kernel_size=3, stride=2)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inception(path: str | Path | None) -> FIDInceptionV3:
    """The FID network from a local state dict (read with ``weights_only=True``), in eval mode.

    Every tensor of the network must be in the file with its shape (``num_batches_tracked`` aside);
    anything else is refused. A file whose sha256 does not start with ``6726825d`` still loads (the
    tests use random weights) but is logged, and ``reference_weights`` is False.
    """
    if path is None:
        raise InceptionWeightsError(WEIGHTS_HELP)
    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"{path} does not exist. {WEIGHTS_HELP}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refused, truncated zip, not a torch file
        raise InceptionWeightsError(f"{path}: cannot read it as a PyTorch state dict ({err}). {WEIGHTS_HELP}") from err
    if not isinstance(state, dict):
        raise InceptionWeightsError(f"{path}: holds a {type(state).__name__}, not a state dict. {WEIGHTS_HELP}")
    net = FIDInceptionV3()
    skip = "num_batches_tracked"
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith(skip)}
    given = {k: tuple(v.shape) for k, v in state.items() if not k.endswith(skip) and isinstance(v, Tensor)}
    missing, unexpected = sorted(expected.keys() - given.keys()), sorted(given.keys() - expected.keys())
    wrong = [f"{k} {given[k]} != {expected[k]}" for k in sorted(expected.keys() & given.keys())
             if given[k] != expected[k]]
    if missing or unexpected or wrong:
        raise InceptionWeightsError(f"{path}: not the FID InceptionV3 (missing {missing[:3]}, unexpected "
                                    f"{unexpected[:3]}, wrong shapes {wrong[:3]}). {WEIGHTS_HELP}")
    net.load_state_dict({k: state[k] for k in expected}, strict=False)
    net.reference_weights = _sha256(path).startswith(REFERENCE_SHA256_PREFIX)
    if not net.reference_weights:
        log.warning("%s: sha256 does not start with %s; FID/KID from it are not comparable to published values",
                    path, REFERENCE_SHA256_PREFIX)
    return net.eval().requires_grad_(False)
