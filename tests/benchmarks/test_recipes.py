"""``python -m benchmarks.recipes`` times the ablation preset's variants with the configs the study trains."""
import subprocess
import sys
from pathlib import Path

from benchmarks.recipes import build_variants

ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_trains_with_its_own_batches_and_the_no_dt_reference_is_added() -> None:
    runs, steps = build_variants("ci", "phantoms", ["paper"])
    assert list(runs) == ["paper", "nodt"] and steps > 0
    step, batches = runs["paper"]
    assert "reference" in batches[0]  # the paper's reference path: its task attached references to its data
    assert "reference" not in runs["nodt"][1][0]
    assert all(b["image"].equal(c["image"]) for b, c in zip(batches, runs["nodt"][1]))


def test_the_table_has_a_row_per_variant_and_no_dt_is_the_zero_of_the_overhead() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.recipes", "--preset", "ci", "--dataset", "phantoms",
                          "--only", "paper", "--warmup", "0", "--rounds", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)  # a hang guard, not a speed check
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
            for r in run.stdout.splitlines() if r.startswith("| ") and not r.startswith("| variant")}
    assert set(rows) == {"paper", "nodt"} and rows["nodt"][2] == "+0.0%"
    assert float(rows["paper"][0]) > 0 and float(rows["paper"][1]) > 0
