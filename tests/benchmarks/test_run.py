"""``python -m benchmarks.run --suite smoke`` runs end to end and reports every ratio."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("einops", reason="MONAI's DiffusionModelUNet attention needs einops (pip install einops)")

ROOT = Path(__file__).resolve().parents[2]
RATIO_ROWS = ("training img/s", "sampling img/s", "peak training memory", "validation L_FM", "distillation",
              "adversarial", "data: loader-only", "DDP")


def test_smoke_suite_prints_finite_positive_ratios(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--suite", "smoke", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)  # a hang guard, not a speed check
    assert run.returncode == 0, run.stderr[-3000:]
    table = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ")]
    header, rows = [c.strip() for c in table[0]], {r[0].strip(): [c.strip() for c in r] for r in table[1:]}
    ratio = header.index("ratio")
    for name in RATIO_ROWS:
        row = next(r for figure, r in rows.items() if figure.startswith(name))
        assert math.isfinite(float(row[ratio])) and float(row[ratio]) > 0, row
    assert any(figure.startswith("FRD") for figure in rows)
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == len(rows) and saved["meta"]["suite"]["name"] == "smoke"
