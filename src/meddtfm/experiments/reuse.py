"""Scores kept beside a study's runs and reused while what they were computed from is unchanged.

Each generator's scores go to ``EVAL/KEY/metrics.json`` (``evaluation.report.write_report``) with the key they
were computed for in its settings: the evaluation spec with the sampling seeds, the metrics, the path and
modification time of the weights and of the segmenter, the Inception weights and, when one is given, the sampler.
A later call reads the file while the key matches; the generators without a match are scored together in one
``compare.compare``, so they share the real images' pass.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..evaluation.report import write_report
from .compare import Integration, Scorer, compare


def stamp(path: Path | None) -> list | None:
    """A file's path and modification time, which change when it is rewritten."""
    return None if path is None else [str(path), path.stat().st_mtime_ns]


def cached(path: Path, key: Mapping[str, Any]) -> dict | None:
    """The JSON document at ``path`` if it was written for ``key``."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc if doc.get("settings", {}).get("key") == json.loads(json.dumps(key)) else None


@dataclass
class Scored:
    """Generator name -> its ``metrics.json`` document (``runs``, ``reference``, ``notes``, ``settings`` with
    ``key``, ``samples``, ``pairs``), and what all of them share: one split, one segmenter."""

    docs: dict[str, dict]

    @property
    def reference(self) -> dict[str, float]:
        """The segmenter on the real images of the split."""
        return {k: float(v) for k, v in next(iter(self.docs.values()))["reference"].items()}

    @property
    def notes(self) -> list[str]:
        return list(dict.fromkeys(n for d in self.docs.values() for n in d["notes"]))

    @property
    def samples(self) -> int:
        return next(iter(self.docs.values()))["settings"]["samples"]

    @property
    def pairs(self) -> int:
        return next(iter(self.docs.values()))["settings"]["pairs"]


def score_cached(scorer: Scorer, weights: Mapping[str, Path], eval_dir: Path,
                 seeds: Mapping[str, Sequence[int]] | None = None,
                 samplers: Mapping[str, Integration] | None = None,
                 settings: Mapping[str, Mapping[str, Any]] | None = None) -> Scored:
    """Each generator's ``metrics.json`` document (its settings extended by ``settings[name]``), read from
    ``eval_dir/NAME`` or scored now.

    ``weights``, ``seeds`` and ``samplers`` are those of ``compare.compare``.
    """
    segmenter = Path(scorer.segmenter) if scorer.segmenter else None
    keys = {}
    for name, path in weights.items():
        evaluation = {**asdict(scorer.spec), **({"seeds": list(seeds[name])} if seeds else {})}
        keys[name] = {"evaluation": evaluation, "metrics": list(scorer.metrics), "weights": stamp(path),
                      "segmenter": stamp(segmenter), "inception": scorer.inception}
        if samplers and name in samplers:
            keys[name]["sampler"] = list(samplers[name])
    found = {name: cached(eval_dir / name / "metrics.json", keys[name]) for name in weights}
    docs = {name: doc for name, doc in found.items() if doc is not None}
    todo = [name for name in weights if name not in docs]
    if todo:
        result = compare(scorer, {n: weights[n] for n in todo}, seeds={n: seeds[n] for n in todo} if seeds else None,
                         samplers={n: samplers[n] for n in todo if n in samplers} if samplers else None)
        for name in todo:
            write_report(eval_dir / name, result.runs[name], result.reference, result.notes,
                         {"key": keys[name], "samples": result.samples, "pairs": result.pairs,
                          **(settings or {}).get(name, {})})
            docs[name] = json.loads((eval_dir / name / "metrics.json").read_text())
    return Scored({name: docs[name] for name in weights})
