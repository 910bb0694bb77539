"""Built-in default data: procedural brain-MRI and dermoscopy phantoms with lesion masks (no download).

Each subject is drawn from ``numpy.random.default_rng([phantom_seed, subject])`` at the configured
resolution, so the same config gives the same pixels on any machine.

* ``mri``: a head (skull ring, grey and white matter with smooth texture, two ventricles) in four
  sequences (FLAIR, T1, T1ce, T2) with sequence-specific tissue contrasts and a bias field. Every
  subject has two slices with identical anatomy: slice 0 healthy, slice 1 with a tumour made of a
  necrotic core (NCR), an enhancing rim (ET) and surrounding oedema (ED). The healthy slice is the
  natural reference image for reference-guided synthesis.
* ``dermoscopy``: skin with texture, vignetting and hairs, and one lesion whose shape, colour and
  texture follow its diagnosis (melanoma, nevus, benign keratosis); the caption names the diagnosis,
  site, sex and age as in ISIC metadata.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ..config import ConfigError
from .base import Decoded, MedicalDataset, Record

MRI_SEQUENCES = ("flair", "t1", "t1ce", "t2")
# Tissue intensities in [0, 1] per sequence: background, skull, CSF, WM, GM, ED, ET, NCR.
_TISSUES = ("bg", "skull", "csf", "wm", "gm", "ed", "et", "ncr")
_CONTRAST = {
    "flair": (0.0, 0.25, 0.08, 0.45, 0.58, 0.88, 0.78, 0.35),
    "t1": (0.0, 0.55, 0.12, 0.75, 0.52, 0.40, 0.50, 0.22),
    "t1ce": (0.0, 0.55, 0.12, 0.75, 0.52, 0.42, 0.97, 0.20),
    "t2": (0.0, 0.30, 0.92, 0.35, 0.50, 0.85, 0.65, 0.95),
}
_DIAGNOSES = {  # name: (base RGB, darkness spread, irregularity, prior)
    "melanoma": ((0.30, 0.18, 0.14), 0.30, 0.35, 0.3),
    "melanocytic nevus": ((0.50, 0.32, 0.22), 0.10, 0.08, 0.5),
    "benign keratosis": ((0.62, 0.48, 0.34), 0.15, 0.18, 0.2),
}
_SITES = ("anterior torso", "posterior torso", "upper extremity", "lower extremity", "head/neck")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], ``(y, x)`` each ``S x S``."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    return np.meshgrid(c, c, indexing="ij")


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with correlation length ``scale`` (fraction of the image)."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma=max(scale * size, 0.5), mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _blob(y: np.ndarray, x: np.ndarray, cy: float, cx: float, radius: float, rng: np.random.Generator,
          irregularity: float) -> np.ndarray:
    """Normalised radius of a star-shaped blob (<1 inside) with random low-order harmonics on its border."""
    r = np.hypot(y - cy, x - cx)
    theta = np.arctan2(y - cy, x - cx)
    border = np.ones_like(theta)
    for k in range(2, 6):
        border += irregularity / k * rng.uniform(-1, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r / (radius * np.clip(border, 0.4, None))


def mri_phantom(rng: np.random.Generator, size: int,
                sequences: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One subject: healthy ``C x S x S``, tumour ``C x S x S`` (both in [-1, 1]), label map ``S x S``.

    The label map uses BraTS values: 1 NCR, 2 ED, 4 ET.
    """
    y, x = _grid(size)
    angle = rng.uniform(-0.15, 0.15)
    yr, xr = y * np.cos(angle) - x * np.sin(angle), y * np.sin(angle) + x * np.cos(angle)
    ay, ax = rng.uniform(0.82, 0.92), rng.uniform(0.68, 0.78)
    head = (yr / ay) ** 2 + (xr / ax) ** 2
    tex = _smooth_noise(rng, size, 0.04)
    tissue = np.zeros((size, size), np.int64)
    tissue[head < 1] = 1
    brain = head < 0.86 + 0.02 * tex
    tissue[brain] = 4
    tissue[brain & (head < 0.55 + 0.12 * _smooth_noise(rng, size, 0.05))] = 3
    for side in (-1, 1):
        vent = ((yr + 0.05) / rng.uniform(0.18, 0.24)) ** 2 + ((xr - side * 0.09) / rng.uniform(0.05, 0.08)) ** 2
        tissue[vent < 1] = 2
    healthy_tissue = tissue.copy()
    labels = np.zeros((size, size), np.uint8)
    r_tumour = rng.uniform(0.12, 0.22)
    ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.5)
    cy, cx = dist * ay * np.sin(ang), dist * ax * np.cos(ang)
    core = _blob(y, x, cy, cx, r_tumour, rng, 0.3)
    edema = _blob(y, x, cy, cx, r_tumour * rng.uniform(1.5, 2.0), rng, 0.45) < 1
    inside_brain = healthy_tissue >= 2
    for value, region, label in ((5, edema, 2), (6, core < 1, 4), (7, core < rng.uniform(0.45, 0.7), 1)):
        region = region & inside_brain
        tissue[region] = value
        labels[region] = label
    bias = 1 + 0.08 * _smooth_noise(rng, size, 0.3)
    grain = 0.04 * tex + 0.02 * rng.standard_normal((size, size))
    out = []
    for t in (healthy_tissue, tissue):
        channels = []
        for seq in sequences:
            intensity = np.asarray(_CONTRAST[seq])[t] * bias + np.where(t > 0, grain, 0.0)
            channels.append(np.where(t > 0, np.clip(intensity, 0, 1) * 2 - 1, -1.0))
        out.append(np.stack(channels).astype(np.float32))
    return out[0], out[1], labels


def lesion_metadata(rng: np.random.Generator) -> tuple[str, str]:
    """Diagnosis and ISIC-style caption of one dermoscopy phantom."""
    names = list(_DIAGNOSES)
    diagnosis = names[rng.choice(len(names), p=[_DIAGNOSES[n][3] for n in names])]
    sex = ("female", "male")[rng.integers(2)]
    site = _SITES[rng.integers(len(_SITES))]
    return diagnosis, f"dermoscopy, {diagnosis}, {site}, {sex}, about {5 * rng.integers(4, 17)} years"


def dermoscopy_phantom(rng: np.random.Generator, size: int, diagnosis: str) -> tuple[np.ndarray, np.ndarray]:
    """One lesion of ``diagnosis``: RGB image ``3 x S x S`` in [-1, 1] and binary mask ``S x S``."""
    colour, spread, irregularity, _ = _DIAGNOSES[diagnosis]
    y, x = _grid(size)
    skin = np.asarray((0.85, 0.66, 0.58)) * rng.uniform(0.85, 1.05)
    img = skin[:, None, None] * (1 + 0.04 * _smooth_noise(rng, size, 0.02))[None]
    radius = rng.uniform(0.25, 0.5)
    lesion_r = _blob(y, x, rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), radius, rng, irregularity)
    mask = lesion_r < 1
    pigment = np.clip(1 - lesion_r, 0, 1) ** 0.5 * (1 + spread * _smooth_noise(rng, size, 0.06))
    lesion_rgb = np.asarray(colour)[:, None, None] * (1 - 0.5 * spread * _smooth_noise(rng, size, 0.03))[None]
    alpha = np.clip(pigment * 1.5, 0, 1) * mask
    img = img * (1 - alpha) + lesion_rgb * alpha
    if diagnosis == "melanoma":
        veil = (_smooth_noise(rng, size, 0.05) > 0.8) & mask
        img[:, veil] = np.asarray((0.35, 0.38, 0.48))[:, None]
    for _ in range(rng.integers(0, 5)):
        a, b = rng.uniform(-1, 1, 2), rng.uniform(-np.pi, np.pi)
        dist = np.abs((y - a[0]) * np.cos(b) - (x - a[1]) * np.sin(b))
        img *= 1 - 0.6 * (dist < 0.6 / size + 0.004)[None]
    img *= np.clip(1.25 - 0.45 * np.hypot(y, x), 0, 1)[None]
    img = np.clip(img + 0.015 * rng.standard_normal(img.shape), 0, 1) * 2 - 1
    return img.astype(np.float32), mask


class PhantomDataset(MedicalDataset):
    """Procedural phantoms; ``data.phantom_kind`` picks MRI (4 sequences, NCR/ED/ET) or dermoscopy."""

    @property
    def has_slices(self) -> bool:  # type: ignore[override]
        return self.cfg.phantom_kind == "mri"

    def scan(self) -> list[Record]:
        cfg = self.cfg
        if cfg.phantom_kind == "mri":
            unknown = sorted(set(cfg.modalities) - set(MRI_SEQUENCES))
            if unknown:
                raise ConfigError(f"data.modalities: unknown MRI phantom sequences {unknown}; "
                                  f"choose from {MRI_SEQUENCES}")
            self.channel_names = tuple(cfg.modalities) or MRI_SEQUENCES
            self.class_names = ("NCR", "ED", "ET") + (("WT",) if cfg.whole_tumour else ())
            wanted = {"tumour": (1,), "healthy": (0,), "brain": (0, 1), "all": (0, 1)}[cfg.slices]
        else:
            self.channel_names, self.class_names = ("R", "G", "B"), ("lesion",)
            wanted = (-1,)
        meta = {i: lesion_metadata(self._rng(i, 1)) if cfg.phantom_kind == "dermoscopy" else ("", "")
                for i in range(cfg.phantom_count)}
        return [
            Record(
                sample_id=f"phantom_{i:05d}" + (f"_s{z}" if z >= 0 else ""),
                subject_id=f"phantom_{i:05d}",
                paths=(f"phantom://{cfg.phantom_kind}/{cfg.phantom_seed}/{i}",),
                caption=meta[i][1],
                slice_index=z,
                label=meta[i][0] or ("healthy", "tumour")[z],
            )
            for i in range(cfg.phantom_count)
            for z in wanted
        ]

    def has_lesion_mask(self, record: Record) -> bool:
        """Every phantom is drawn with its mask (a healthy slice's is empty)."""
        return True

    def _rng(self, subject: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.phantom_seed, subject, stream])

    def decode(self, record: Record) -> Decoded:
        cfg = self.cfg
        rng = self._rng(int(record.subject_id.rsplit("_", 1)[1]), 0)
        if cfg.phantom_kind == "dermoscopy":
            image, mask = dermoscopy_phantom(rng, cfg.resolution, record.label)
            return Decoded(image, mask[None].astype(np.float32))
        healthy, tumour, labels = mri_phantom(rng, cfg.resolution, self.channel_names)
        if record.slice_index == 0:
            labels = np.zeros_like(labels)
        onehot = [labels == 1, labels == 2, labels == 4] + ([labels > 0] if cfg.whole_tumour else [])
        return Decoded(healthy if record.slice_index == 0 else tumour, np.stack(onehot).astype(np.float32))
