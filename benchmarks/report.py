"""The suite's results as rows: one figure per row, ours against its reference, their ratio and target."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

DT_BUDGET = 0.15  # the target: distillation overhead <= 15%


@dataclass
class Row:
    """``ratio = ours / reference``; ``per_seed``: that ratio for each seed, when the figure has seeds."""

    figure: str
    dataset: str
    ours: float | None
    reference: float | None
    ratio: float | None
    target: str = "-"
    met: str = "-"
    per_seed: list[float] = field(default_factory=list)


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def _overhead(ratio: float) -> str:
    """Extra time per image of ``ours`` over its reference, from the img/s ratio."""
    return f"overhead {100 * (1 / ratio - 1):+.0f}%"


def _at_least(ratio: float, bound: float) -> str:
    return "yes" if ratio >= bound else "no"


def dataset_rows(dataset: str, tp: dict, quality: dict, loader_img_s: float, nfe: int, steps: int,
                 frd_reason: str | None) -> list[Row]:
    """Rows of one dataset from ``throughput``, ``quality`` ({seed: {contender: row}}) and the loader figure."""
    ours, peer, seeds = tp["ours"], tp["peer"], list(quality)
    rows = [Row("training img/s, ours / peer", dataset, ours["train_img_s"], peer["train_img_s"],
                ours["train_img_s"] / peer["train_img_s"], ">= 1.0",
                _at_least(ours["train_img_s"] / peer["train_img_s"], 1.0)),
            Row(f"sampling img/s at NFE {nfe}, ours / peer", dataset, ours["sample_img_s"], peer["sample_img_s"],
                ours["sample_img_s"] / peer["sample_img_s"], ">= 1.0",
                _at_least(ours["sample_img_s"] / peer["sample_img_s"], 1.0))]
    for key, figure in (("peak_mib", "peak training memory (MiB), ours / peer"),
                        ("val_fm", f"validation L_FM after {steps} steps, ours / peer")):
        per_seed = [quality[s]["ours"][key] / quality[s]["peer"][key] for s in seeds]
        rows.append(Row(figure, dataset, statistics.fmean(quality[s]["ours"][key] for s in seeds),
                        statistics.fmean(quality[s]["peer"][key] for s in seeds), geomean(per_seed),
                        "lower is better", "-", per_seed))
    frd_figure = f"FRD (v1: log FRD) after {steps} steps, ours / peer (ratio of FRDs)"
    if frd_reason:
        rows.append(Row(frd_figure, dataset, None, None, None, "lower is better", f"n/a: {frd_reason}"))
    else:
        per_seed = [math.exp(quality[s]["ours"]["frd"] - quality[s]["peer"]["frd"]) for s in seeds]
        rows.append(Row(frd_figure, dataset, statistics.fmean(quality[s]["ours"]["frd"] for s in seeds),
                        statistics.fmean(quality[s]["peer"]["frd"] for s in seeds), geomean(per_seed),
                        "lower is better", "-", per_seed))
    dt = ours["train_img_s"] / tp["ours no-DT"]["train_img_s"]
    adv = tp["ours +adv"]["train_img_s"] / ours["train_img_s"]
    step_ratio = loader_img_s / ours["train_img_s"]
    rows += [Row("distillation: ours img/s, lambda > 0 / lambda = 0", dataset, ours["train_img_s"],
                 tp["ours no-DT"]["train_img_s"], dt, f"overhead <= {DT_BUDGET:.0%}",
                 f"{_at_least(dt, 1 / (1 + DT_BUDGET))} ({_overhead(dt)})"),
             Row("adversarial: ours img/s, + L_adv / without", dataset, tp["ours +adv"]["train_img_s"],
                 ours["train_img_s"], adv, "-", _overhead(adv)),
             Row("data: loader-only img/s / ours training img/s", dataset, loader_img_s, ours["train_img_s"],
                 step_ratio, ">= 3", _at_least(step_ratio, 3.0))]
    return rows


def ddp_row(dataset: str, img_s: dict[int, float]) -> Row:
    ratio = img_s[2] / img_s[1]
    return Row("DDP: ours global img/s, 2 gloo processes / 1", dataset, img_s[2], img_s[1], ratio,
               "> 1 (scale-out works)", _at_least(ratio, 1.0 + 1e-9))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def markdown(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| figure | dataset | ours | reference | ratio | per seed | target | met |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(f"{v:.3g}" for v in r.per_seed) or "-"
        lines.append(f"| {r.figure} | {r.dataset} | {_fmt(r.ours)} | {_fmt(r.reference)} | {_fmt(r.ratio)} | {seeds} | "
                     f"{r.target} | {r.met} |")
    return "\n".join(lines)
