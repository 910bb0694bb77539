"""Run logs: a long-format CSV (``step,split,name,value``) and TensorBoard scalars, written by rank 0."""
from __future__ import annotations

import csv
from pathlib import Path

from ..files import atomic_write


class MetricLogger:
    """Append scalars to ``out/metrics.csv`` and ``out/tensorboard``; a no-op when ``enabled`` is False.

    A run resumed at ``start_step`` first drops the rows logged after it (by the interrupted run), so
    the logs of a resumed run read like those of an uninterrupted one.
    """

    def __init__(self, out: Path, enabled: bool = True, start_step: int = 0) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        path = Path(out) / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = [r for r in csv.reader(fh)][1:]
        atomic_write(path, lambda tmp: _write_csv(tmp, [r for r in rows if int(r[0]) <= start_step]))
        self._fh = open(path, "a", newline="")
        self._csv = csv.writer(self._fh)
        self._tb = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=start_step + 1 if start_step else None)

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in sorted(values.items()):
            self._csv.writerow([step, split, name, f"{value:.6g}"])
            self._tb.add_scalar(f"{split}/{name}", value, step)
        self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()
            self._tb.close()


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "split", "name", "value"])
        writer.writerows(rows)
