"""Aggregation over runs (seeds, or synthetic folders): mean +- std per metric, JSON and a markdown table.

``std`` is the sample standard deviation (``ddof = 1``) over runs, None for a single run. A metric that
is ``inf`` in some run (PSNR of identical images, log-FRD of identical sets) has that mean and no std.
JSON has no infinities: they are written as the strings ``"inf"`` / ``"-inf"``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..files import atomic_write_text

Runs = Mapping[str, Mapping[str, float]]  # run label -> metric -> value


def summarize(runs: Runs) -> dict[str, dict[str, Any]]:
    """``metric -> {mean, std, n}`` over the runs that report the metric (order of first appearance)."""
    names: dict[str, None] = {}
    for values in runs.values():
        names.update(dict.fromkeys(values))
    out = {}
    for name in names:
        xs = [float(v[name]) for v in runs.values() if name in v and v[name] is not None]
        if not xs:
            continue
        mean = math.fsum(xs) / len(xs) if all(math.isfinite(x) for x in xs) else sum(xs) / len(xs)
        std = None
        if len(xs) > 1 and math.isfinite(mean):
            std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        out[name] = {"mean": mean, "std": std, "n": len(xs)}
    return out


def format_number(x: float | None) -> str:
    if x is None:
        return ""
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def markdown_table(summary: Mapping[str, Mapping[str, Any]], reference: Mapping[str, float] | None = None,
                   runs: int | None = None) -> str:
    """``| metric | synthetic mean +- std | real |``; ``reference`` fills the real column (e.g. Dice ceiling)."""
    reference = reference or {}
    head = f"synthetic (mean ± std over {runs} runs)" if runs else "synthetic (mean ± std)"
    lines = [f"| metric | {head} | real (reference) |", "|---|---|---|"]
    for name in list(summary) + [k for k in reference if k not in summary]:
        s = summary.get(name)
        spread = f" ± {format_number(s['std'])}" if s is not None and s["std"] is not None else ""
        cell = "" if s is None else format_number(s["mean"]) + spread
        lines.append(f"| {name} | {cell} | {format_number(reference.get(name))} |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(out: str | Path, runs: Runs, reference: Mapping[str, float] | None = None,
                 notes: Sequence[str] = (), settings: Mapping[str, Any] | None = None) -> str:
    """Write ``out/metrics.json`` (runs, summary, reference, notes, settings) and ``out/metrics.md``; return the table.

    Both files are written atomically (``meddtfm.files.atomic_write``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs)
    table = markdown_table(summary, reference, len(runs))
    document = {"summary": summary, "runs": runs, "reference": reference or {}, "notes": list(notes),
                "settings": settings or {}}
    text = json.dumps(_json_safe(document), indent=2, allow_nan=False)
    markdown = table + ("\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes) if notes else "") + "\n"
    for name, content in (("metrics.json", text + "\n"), ("metrics.md", markdown)):
        atomic_write_text(out / name, content)
    return markdown
