"""BraTS 2021 volumes (``root/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]``) as 2D axial slices.

* Channels: the chosen sequences in the order flair, t1, t1ce, t2. With ``data.modalities`` empty,
  the sequences that most cases have are used, so that the set is present in every kept case: a case
  lacking one is a bad case (an error, or dropped under ``on_bad_sample: skip``) rather than a reason
  to drop that sequence for everyone.
* Classes: label 1 -> NCR, 2 -> ED, 4 -> ET, and with ``data.whole_tumour`` WT (their union). Label 3
  also maps to NCR: it is BraTS 2015's non-enhancing tumour, which BraTS 2017 merged into 1. (BraTS
  2023 reuses 3 for ET, but its files are named differently and are not picked up.) Other values are bad.
* Brain, normalisation, the radiological view and the slice cache: ``meddtfm.data.brats_volumes``.
* ``scan`` decodes each case's segmentation (and, for healthy / brain selection, its sequences) once
  and caches per-slice statistics as JSON under ``$MEDDTFM_CACHE`` (default ``~/.cache/meddtfm``).
* ``describe`` (``meddtfm data inspect``): per class the slices holding it, and per sequence its file type and
  native intensity range (brain voxels) with the per-case window that ``data.intensity_percentiles`` maps to [-1, 1].
* Each worker keeps ``data.volume_cache`` cases open (mapped, or in memory when ``data.slice_cache`` is off).
* Captions name the classes present at native size ("brain MRI, necrotic core, edema") or say
  "brain MRI, no tumour", so BraTS can also train caption conditioning.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from ..config import ConfigError, DataConfig
from .base import Decoded, MedicalDataset, Record
from .brats_volumes import LABELS, brain_mask, case_arrays, check_shape, intensity_range, read_volume
from .cache import file_signature, load_cached, save_cached
from .errors import BadSampleError
from .io import check_labels

log = logging.getLogger(__name__)

MODALITIES = ("flair", "t1", "t1ce", "t2")
CLASS_NAMES = ("NCR", "ED", "ET")
_CAPTION_WORDS = ("necrotic core", "edema", "enhancing tumour")
_FILE = re.compile(r"^(.+)_(flair|t1|t1ce|t2|seg)\.nii(?:\.gz)?$")
_INDEX_VERSION = 3  # 2: brain = not the border's most frequent value; 3: per-class slice and intensity statistics


def find_cases(root: Path) -> dict[str, dict[str, list[Path]]]:
    """Case id -> {sequence or "seg": files} for every sub-folder holding ``<folder>_<kind>.nii[.gz]``."""
    cases: dict[str, dict[str, list[Path]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            match = _FILE.match(path.name)
            if match and match.group(1) == folder.name:
                cases.setdefault(folder.name, {}).setdefault(match.group(2), []).append(path)
    return cases


class BraTSDataset(MedicalDataset):
    """Axial slices of BraTS cases: ``image`` C x H x W in [-1, 1], ``mask`` K x H x W one-hot (NCR, ED, ET[, WT])."""

    has_slices = True

    def __init__(self, cfg: DataConfig, split: str = "train", seed: int = 0) -> None:
        self._volumes: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bad: dict[str, BadSampleError] = {}
        self.case_info: dict[str, dict[str, int]] = {}  # per case: slice counts
        self._case_files: dict[str, list[Path]] = {}  # per case: its sequences, then its segmentation
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
                self._case_files[case] = paths
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
            raise ConfigError(f"data.modalities: unknown BraTS sequences {unknown}; "
                              f"choose from {', '.join(MODALITIES)}")
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
        counts.update({name: int((np.asarray(classes) >> bit & 1).sum()) for bit, name in enumerate(CLASS_NAMES)})
        keep = tumour if self.cfg.slices == "tumour" else np.ones_like(tumour)
        if stats["brain"] is not None:
            has_brain = np.asarray(stats["brain"]) >= self.cfg.min_brain_fraction
            counts.update(brain=int(has_brain.sum()), healthy=int((has_brain & ~tumour).sum()))
            keep = has_brain & ~tumour if self.cfg.slices == "healthy" else has_brain
        zs = np.flatnonzero(keep).tolist()
        return classes, zs, {**counts, "selected": len(zs)}

    def _slice_stats(self, paths: list[Path], seg_path: Path, sequences: bool = False) -> dict:
        """Per slice: bits of the classes present and (for healthy / brain selection, or ``sequences``) the brain
        fraction; with the sequences decoded also ``intensity``: per sequence [min, max, low, high] of its brain
        voxels, low / high at ``data.intensity_percentiles``.

        Decodes the segmentation (and the sequences, for the brain) once; cached as JSON keyed on the
        decoded files' paths, sizes and mtimes, so every slice selection and brain threshold reuses it.
        """
        sequences = sequences or self.cfg.slices in ("healthy", "brain")
        decoded = [seg_path] + (paths if sequences else [])
        key = {"version": _INDEX_VERSION, "files": file_signature(decoded, seg_path.parents[1])}
        key["root"] = str(seg_path.parents[1].resolve())
        if sequences:
            key["percentiles"] = [float(p) for p in self.cfg.intensity_percentiles]
        cached = load_cached("brats_index", key)
        if cached is not None:
            return cached
        seg, _ = read_volume(seg_path)
        check_labels(seg, LABELS, seg_path)
        bits = sum(np.isin(seg, v).any(axis=(0, 1)) << bit for bit, v in enumerate(((1, 3), (2,), (4,))))
        stats = {"classes": bits.tolist(), "brain": None}
        if sequences:
            volumes = [read_volume(p, (seg_path, seg.shape))[0] for p in paths]
            brain = brain_mask(volumes)
            stats["brain"] = brain.mean(axis=(0, 1)).round(6).tolist()
            stats["intensity"] = [intensity_range(v[brain], key["percentiles"]) for v in volumes]
        else:
            for path in paths:
                try:
                    shape = nib.load(str(path)).shape
                except Exception as err:  # nibabel raises many types for a damaged header
                    raise BadSampleError(path, f"cannot read the NIfTI header ({err})") from err
                check_shape(shape, (seg_path, seg.shape), path)
        save_cached("brats_index", key, stats)
        return stats

    def describe(self) -> dict:
        """The cases of this split: ``slices_per_class`` (slices in all, with brain, tumour, healthy, per class) and
        ``native_intensity``: per sequence its file type, ``min`` / ``max`` over brain voxels and the range over cases
        of the normalisation window (``data.intensity_percentiles``). Decodes each case's sequences once (cached)."""
        cases = sorted({r.subject_id for r in self.records})
        totals: Counter = Counter()
        ranges: list[list[list[float]]] = []
        for case in cases:
            paths = self._case_files[case]
            stats = self._slice_stats(paths[:-1], paths[-1], sequences=True)
            totals.update(self._select(stats)[2])
            ranges.append(stats["intensity"])
        sequences = {}
        for c, name in enumerate(self.channel_names if cases else ()):
            per_case = np.asarray([r[c] for r in ranges], float)  # cases x [min, max, low, high]
            types = sorted({str(nib.load(str(self._case_files[case][c])).get_data_dtype()) for case in cases})
            sequences[name] = {"dtype": ", ".join(types), "min": float(np.nanmin(per_case[:, 0])),
                               "max": float(np.nanmax(per_case[:, 1]))}
            for p, column in zip(self.cfg.intensity_percentiles, per_case[:, 2:].T):
                sequences[name][f"p{p:g}_over_cases"] = [float(np.nanmin(column)), float(np.nanmax(column))]
        keys = ("slices", "brain", "tumour", "healthy", *CLASS_NAMES)
        return {"cases": len(cases), "slices_per_class": {k: int(totals[k]) for k in keys},
                "native_intensity": sequences}

    def decode(self, record: Record) -> Decoded:
        """Slice ``record.slice_index`` of its case: C x H x W float32 image, K x H x W one-hot mask."""
        case = record.subject_id
        if case in self._bad:
            raise self._bad[case]
        entry = self._volumes.get(case)
        if entry is None:
            try:
                entry = case_arrays([Path(p) for p in record.paths], Path(record.mask_path or ""),
                                    [float(p) for p in self.cfg.intensity_percentiles], self.channel_names,
                                    self.cfg.slice_cache)
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
