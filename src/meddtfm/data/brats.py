"""BraTS 2021 volumes (``root/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]``) as 2D axial slices.

* Channels: the chosen sequences in the order flair, t1, t1ce, t2. With ``data.modalities`` empty,
  the sequences that most cases have are used, so that the set is present in every kept case: a case
  lacking one is a bad case (an error, or dropped under ``on_bad_sample: skip``) rather than a reason
  to drop that sequence for everyone.
* Classes: label 1 -> NCR, 2 -> ED, 4 -> ET, and with ``data.whole_tumour`` WT (their union). Label 3
  also maps to NCR: it is BraTS 2015's non-enhancing tumour, which BraTS 2017 merged into 1. (BraTS
  2023 reuses 3 for ET, but its files are named differently and are not picked up.) Other values are bad.
* Brain: voxels differing from their sequence's background value in any chosen sequence. That value is
  the most frequent one on the volume's six faces: skull-stripped files are constant outside the head
  (0 in raw files; 0 or a negative constant in z-scored ones), whether or not it is the minimum. Each
  sequence is clipped to ``data.intensity_percentiles`` of its brain voxels and scaled to [-1, 1];
  the background is exactly -1.
* Slices are axial (the volume's last axis), shown in the radiological view: see ``slice_to_image``.
* ``scan`` decodes each case's segmentation (and, for healthy / brain selection, its sequences) once
  and caches per-slice statistics as JSON under ``$MEDDTFM_CACHE`` (default ``~/.cache/meddtfm``).
* ``data.slice_cache`` (default on): a case's first ``decode``, in any worker or rank, saves its
  ``decode_case`` arrays as ``images.npy`` and ``classes.npy`` in ``$MEDDTFM_CACHE/brats_volumes-<key>/``
  (key: the files' paths, sizes and mtimes, the sequences, the percentiles); later decodes memory-map
  them and copy out one slice. Images are float16: in [-1, 1] its step is at most 2**-11, 1/16 of an
  8-bit grey level, and it halves the disk (18 MB per sequence at 240 x 240 x 155: ~45 MB a case for
  flair + t1ce, ~80 MB for all four). Atomic writes (temp file + ``os.replace``) make concurrent
  builders of a case merely redundant; an unreadable entry is rebuilt; a failed write keeps the case
  in memory. Each worker keeps ``data.volume_cache`` cases open (mapped, or in memory when off).
* Captions name the classes present at native size ("brain MRI, necrotic core, edema") or say
  "brain MRI, no tumour", so BraTS can also train caption conditioning.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform
from tqdm import tqdm

from ..config import ConfigError, DataConfig
from .base import Decoded, MedicalDataset, Record
from .cache import file_signature, load_cached, load_cached_arrays, save_cached, save_cached_arrays
from .errors import BadSampleError
from .io import check_finite, check_labels, read_nifti

log = logging.getLogger(__name__)

MODALITIES = ("flair", "t1", "t1ce", "t2")
CLASS_NAMES = ("NCR", "ED", "ET")
LABELS = (0, 1, 2, 3, 4)
_CLASS_OF_LABEL = np.array([0, 1, 2, 1, 3], np.uint8)  # BraTS label -> 0 background, 1 NCR, 2 ED, 3 ET
_CAPTION_WORDS = ("necrotic core", "edema", "enhancing tumour")
_FILE = re.compile(r"^(.+)_(flair|t1|t1ce|t2|seg)\.nii(?:\.gz)?$")
_INDEX_VERSION = 2  # 2: brain = not the border's most frequent value
_VOLUME_VERSION = 1
BRATS_AXCODES = ("L", "P", "S")  # BraTS 2021 files: affine diag(-1, -1, 1), i.e. LPS
RADIOLOGICAL = ("P", "L")  # image rows run anterior -> posterior, columns patient right -> left


def _reorient(array: np.ndarray, start: Sequence[str], end: Sequence[str]) -> np.ndarray:
    """Flip / transpose the last two axes of ``array`` from in-plane codes ``start`` to ``end``."""
    transform = ornt_transform(axcodes2ornt(tuple(start)), axcodes2ornt(tuple(end)))
    moved = apply_orientation(np.moveaxis(array, (-2, -1), (0, 1)), transform)
    return np.ascontiguousarray(np.moveaxis(moved, (0, 1), (-2, -1)))


def slice_to_image(volume_slice: np.ndarray, axcodes: Sequence[str] = BRATS_AXCODES) -> np.ndarray:
    """``... x X x Y`` axial slice(s) ``volume[..., z]`` -> ``... x H x W`` in the radiological view.

    The view is the one radiologists and PNG viewers expect: anterior at the top, the patient's right
    on the image's left. ``axcodes`` (``nibabel.aff2axcodes(affine)``) says where the volume's axes
    point; for BraTS (LPS: X runs right -> left, Y anterior -> posterior) the mapping is a transpose.
    """
    return _reorient(volume_slice, axcodes[:2], RADIOLOGICAL)


def image_to_slice(image: np.ndarray, axcodes: Sequence[str] = BRATS_AXCODES) -> np.ndarray:
    """Inverse of ``slice_to_image``: ``... x H x W`` -> ``... x X x Y``, ready for ``volume[..., z] = ...``.

    Resize the image back to the volume's in-plane size first; the source affine then applies unchanged.
    """
    return _reorient(image, RADIOLOGICAL, axcodes[:2])


def normalise(volume: np.ndarray, brain: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Clip ``volume`` to ``percentiles`` of its ``brain`` voxels and map them to [-1, 1]; background is -1."""
    out = np.full(volume.shape, -1.0, np.float32)
    if brain.any():
        values = volume[brain]
        lo, hi = np.percentile(values, percentiles)
        out[brain] = (np.clip(values, lo, hi) - lo) / max(hi - lo, 1e-8) * 2 - 1
    return out


def background_value(volume: np.ndarray) -> float:
    """The most frequent value on the six faces of an X x Y x Z ``volume``: the constant outside the head."""
    faces = np.concatenate([np.moveaxis(volume, axis, 0)[[0, -1]].ravel() for axis in range(volume.ndim)])
    values, counts = np.unique(faces, return_counts=True)
    return float(values[counts.argmax()])


def brain_mask(volumes: Sequence[np.ndarray]) -> np.ndarray:
    """X x Y x Z bool: voxels that differ from their volume's ``background_value`` in any of ``volumes``."""
    return np.logical_or.reduce([v != background_value(v) for v in volumes])


def find_cases(root: Path) -> dict[str, dict[str, list[Path]]]:
    """Case id -> {sequence or "seg": files} for every sub-folder holding ``<folder>_<kind>.nii[.gz]``."""
    cases: dict[str, dict[str, list[Path]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            match = _FILE.match(path.name)
            if match and match.group(1) == folder.name:
                cases.setdefault(folder.name, {}).setdefault(match.group(2), []).append(path)
    return cases


def _read(path: Path, seg: tuple[Path, tuple[int, ...]] | None = None) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Decode a 3D volume; given ``seg`` (its file and shape), also check the shape matches and all values are finite."""
    array, image = read_nifti(path)
    if array.ndim != 3:
        raise BadSampleError(path, f"expected a 3D volume, got shape {array.shape}")
    if seg is not None:
        _check_shape(array.shape, seg, path)
        check_finite(array, path)
    return array, image


def _check_shape(shape: tuple[int, ...], seg: tuple[Path, tuple[int, ...]], path: Path) -> None:
    if tuple(shape) != tuple(seg[1]):
        raise BadSampleError(path, f"shape {tuple(shape)} differs from the segmentation {seg[0].name}'s {tuple(seg[1])}")


def decode_case(paths: Sequence[Path], seg_path: Path, percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Decode, check and normalise a case: Z x C x H x W float16 images in [-1, 1], Z x H x W uint8 classes."""
    seg, seg_image = _read(seg_path)
    check_labels(seg, LABELS, seg_path)
    axcodes = nib.aff2axcodes(seg_image.affine)
    if axcodes[2] not in ("S", "I"):
        raise BadSampleError(seg_path, f"orientation {axcodes}: the last axis is not superior-inferior")
    volumes = [_read(p, (seg_path, seg.shape))[0] for p in paths]
    brain = brain_mask(volumes)
    images = np.stack([normalise(v, brain, percentiles).astype(np.float16) for v in volumes])
    classes = _CLASS_OF_LABEL[seg.astype(np.uint8)]
    return slice_to_image(np.moveaxis(images, -1, 0), axcodes), slice_to_image(np.moveaxis(classes, -1, 0), axcodes)


def _mapped_case(key: dict, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The slice-cache entry ``key`` as read-only memory maps, if it holds ``decode_case``'s arrays for ``channels``."""
    cached = load_cached_arrays("brats_volumes", key, ("images", "classes"))
    if cached is None:
        return None
    images, classes = cached["images"], cached["classes"]
    if (images.dtype != np.float16 or classes.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != channels
            or images.shape[:1] + images.shape[2:] != classes.shape):
        log.warning("rebuilding slice cache entry %s: unexpected arrays %s %s", key["files"][-1][0], images.shape, classes.shape)
        return None
    return images, classes


class BraTSDataset(MedicalDataset):
    """Axial slices of BraTS cases: ``image`` C x H x W in [-1, 1], ``mask`` K x H x W one-hot (NCR, ED, ET[, WT])."""

    has_slices = True

    def __init__(self, cfg: DataConfig, split: str = "train", seed: int = 0) -> None:
        self._volumes: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bad: dict[str, BadSampleError] = {}
        self.case_info: dict[str, dict[str, int]] = {}  # per case: slice counts
        super().__init__(cfg, split, seed)

    def __getstate__(self) -> dict:
        """Pickle for DataLoader workers without the open volumes (each worker fills its own LRU)."""
        return {**self.__dict__, "_volumes": OrderedDict(), "_bad": {}}

    def scan(self) -> list[Record]:
        cfg = self.cfg
        self.class_names = CLASS_NAMES + (("WT",) if cfg.whole_tumour else ())
        root = Path(cfg.root or "")
        if not cfg.root or not root.is_dir():
            raise BadSampleError(cfg.root or "data.root (not set)", "BraTS root folder does not exist")
        cases = find_cases(root)
        self.channel_names = self._choose_modalities(cases)
        records: list[Record] = []
        for case, files in tqdm(cases.items(), desc="indexing BraTS", unit="case", disable=None):
            try:
                paths = [self._case_file(root, case, files, kind) for kind in self.channel_names + ("seg",)]
                classes, zs, self.case_info[case] = self._select(self._slice_stats(paths[:-1], paths[-1]))
            except BadSampleError as err:
                if cfg.on_bad_sample == "error":
                    raise
                self.skipped.add(err)
                continue
            for z in zs:
                words = [w for bit, w in enumerate(_CAPTION_WORDS) if classes[z] >> bit & 1] or ["no tumour"]
                records.append(Record(
                    sample_id=f"{case}_s{z:03d}", subject_id=case, paths=tuple(map(str, paths[:-1])),
                    mask_path=str(paths[-1]), caption=", ".join(["brain MRI"] + words), slice_index=z,
                    label="tumour" if classes[z] else "healthy",
                ))
        return records

    def _choose_modalities(self, cases: dict[str, dict[str, list[Path]]]) -> tuple[str, ...]:
        requested = [m.lower() for m in self.cfg.modalities]
        unknown = sorted(set(requested) - set(MODALITIES))
        if unknown:
            raise ConfigError(f"data.modalities: unknown BraTS sequences {unknown}; choose from {', '.join(MODALITIES)}")
        if requested:
            return tuple(m for m in MODALITIES if m in requested)
        counts = Counter(kind for files in cases.values() for kind in files if kind != "seg")
        chosen = tuple(m for m in MODALITIES if 2 * counts[m] > len(cases))
        rare = sorted(set(counts) - set(chosen))
        if rare:
            log.warning("ignoring sequences %s: present in only a minority of the cases", rare)
        if cases and not chosen:
            raise BadSampleError(self.cfg.root or "", "no case holds a flair, t1, t1ce or t2 file")
        return chosen

    @staticmethod
    def _case_file(root: Path, case: str, files: dict[str, list[Path]], kind: str) -> Path:
        found = files.get(kind, [])
        if not found:
            raise BadSampleError(root / case / f"{case}_{kind}.nii.gz",
                                 f"case {case} has no {kind} file (it has {', '.join(sorted(files))})")
        if len(found) > 1:
            raise BadSampleError(found[0], f"case {case} has several {kind} files: {[p.name for p in found]}")
        return found[0]

    def _select(self, stats: dict) -> tuple[list[int], list[int], dict[str, int]]:
        """Per-slice class bits, the slices ``data.slices`` chooses, and the case's slice counts."""
        classes = stats["classes"]
        tumour = np.asarray(classes) > 0
        counts = {"slices": len(classes), "tumour": int(tumour.sum())}
        keep = tumour if self.cfg.slices == "tumour" else np.ones_like(tumour)
        if stats["brain"] is not None:
            has_brain = np.asarray(stats["brain"]) >= self.cfg.min_brain_fraction
            counts.update(brain=int(has_brain.sum()), healthy=int((has_brain & ~tumour).sum()))
            keep = has_brain & ~tumour if self.cfg.slices == "healthy" else has_brain
        zs = np.flatnonzero(keep).tolist()
        return classes, zs, {**counts, "selected": len(zs)}

    def _slice_stats(self, paths: list[Path], seg_path: Path) -> dict:
        """Per slice: bits of the classes present and (for healthy / brain selection) the brain fraction.

        Decodes the segmentation (and the sequences, for the brain) once; cached as JSON keyed on the
        decoded files' paths, sizes and mtimes, so every slice selection and brain threshold reuses it.
        """
        decoded = [seg_path] + (paths if self.cfg.slices in ("healthy", "brain") else [])
        key = {"version": _INDEX_VERSION, "files": file_signature(decoded, seg_path.parents[1])}
        key["root"] = str(seg_path.parents[1].resolve())
        cached = load_cached("brats_index", key)
        if cached is not None:
            return cached
        seg, _ = _read(seg_path)
        check_labels(seg, LABELS, seg_path)
        bits = sum(np.isin(seg, v).any(axis=(0, 1)) << bit for bit, v in enumerate(((1, 3), (2,), (4,))))
        stats = {"classes": bits.tolist(), "brain": None}
        if len(decoded) > 1:
            volumes = [_read(p, (seg_path, seg.shape))[0] for p in paths]
            stats["brain"] = brain_mask(volumes).mean(axis=(0, 1)).round(6).tolist()
        else:
            for path in paths:
                try:
                    shape = nib.load(str(path)).shape
                except Exception as err:  # nibabel raises many types for a damaged header
                    raise BadSampleError(path, f"cannot read the NIfTI header ({err})") from err
                _check_shape(shape, (seg_path, seg.shape), path)
        save_cached("brats_index", key, stats)
        return stats

    def decode(self, record: Record) -> Decoded:
        """Slice ``record.slice_index`` of its case: C x H x W float32 image, K x H x W one-hot mask."""
        case = record.subject_id
        if case in self._bad:
            raise self._bad[case]
        entry = self._volumes.get(case)
        if entry is None:
            try:
                entry = self._case_arrays(record)
            except BadSampleError as err:
                self._bad[case] = err
                raise
        if self.cfg.volume_cache > 0:
            self._volumes[case] = entry
            self._volumes.move_to_end(case)
            while len(self._volumes) > self.cfg.volume_cache:
                self._volumes.popitem(last=False)
        images, classes = entry
        z = record.slice_index
        if not 0 <= z < len(classes):
            raise BadSampleError(record.mask_path or case, f"has no slice {z} (it has {len(classes)})")
        labels = np.asarray(classes[z])
        onehot = [labels == c for c in (1, 2, 3)] + ([labels > 0] if self.cfg.whole_tumour else [])
        return Decoded(np.asarray(images[z], dtype=np.float32), np.stack(onehot).astype(np.float32))

    def _case_arrays(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        """The case's ``decode_case`` arrays: memory-mapped from the slice cache, built and saved on a miss."""
        paths, seg_path = [Path(p) for p in record.paths], Path(record.mask_path or "")
        percentiles = [float(p) for p in self.cfg.intensity_percentiles]
        if not self.cfg.slice_cache:
            return decode_case(paths, seg_path, percentiles)
        root = seg_path.parents[1]
        try:
            files = file_signature(paths + [seg_path], root)
        except OSError:  # a missing file: decoding names it
            return decode_case(paths, seg_path, percentiles)
        key = {"version": _VOLUME_VERSION, "root": str(root.resolve()), "files": files,
               "modalities": list(self.channel_names), "percentiles": percentiles}
        hit = _mapped_case(key, len(paths))
        if hit is not None:
            return hit
        images, classes = decode_case(paths, seg_path, percentiles)
        if save_cached_arrays("brats_volumes", key, {"images": images, "classes": classes}):
            hit = _mapped_case(key, len(paths))  # mapped, so the LRU holds no pixels
        return hit if hit is not None else (images, classes)
