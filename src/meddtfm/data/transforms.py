"""Geometry shared by every dataset: square crop, resize, and paired augmentation of image and mask."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Compose, RandAffined, RandFlipd
from monai.utils import convert_to_tensor


def center_square(array: np.ndarray) -> np.ndarray:
    """Crop ``C x H x W`` to its central ``min(H, W)`` square (keeps the aspect ratio of lesions)."""
    h, w = array.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return array[..., top:top + s, left:left + s]


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Square-crop and resize ``C x H x W`` image (antialiased bilinear) and ``K x H x W`` mask (nearest)."""
    img = torch.from_numpy(np.ascontiguousarray(center_square(image), dtype=np.float32))[None]
    msk = torch.from_numpy(np.ascontiguousarray(center_square(mask), dtype=np.float32))[None]
    if img.shape[-1] != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        msk = F.interpolate(msk, size=(size, size), mode="nearest-exact")
    return img[0].clamp_(-1.0, 1.0), msk[0]


def paired_augmentation() -> Compose:
    """Flips and a small affine applied identically to ``image`` and ``mask`` (MONAI dict transforms).

    The background fill is -1 (the images' black) for the image and 0 for the mask.
    """
    keys = ("image", "mask")
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandAffined(
            keys, prob=0.5, rotate_range=np.pi / 18, scale_range=0.08, translate_range=0.04,
            mode=("bilinear", "nearest"), padding_mode="zeros",
        ),
    ])


def augment(transform: Compose, image: torch.Tensor, mask: torch.Tensor,
            seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` with its randomness fixed by ``seed`` (same seed, same augmentation)."""
    transform.set_random_state(seed=seed)
    out = transform({"image": image + 1.0, "mask": mask})  # shift so zero padding lands on -1
    # Plain tensors: a MetaTensor would carry its transform trace through every network op (ms each).
    image, mask = (convert_to_tensor(out[k], track_meta=False) for k in ("image", "mask"))
    return image.sub_(1.0).clamp_(-1.0, 1.0), mask.round_()
