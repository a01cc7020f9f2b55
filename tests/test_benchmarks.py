"""Benchmark scripts run as shipped, on tiny inputs (their numbers are not checked here; they
live in benchmarks/README.md)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_SPACE = """
input_shape = [1, 3, 4, 16, 16]
[base]
depth = 18
stage_blocks = [1, 1, 1, 1]
base_channels = 4
[dimensions]
layer3.inflate = ["none", "all"]
layer4.inflate = ["none", "all"]
with_pool2 = [true, false]
"""


def test_bench_latency_model_with_a_retest_pass(tmp_path: Path) -> None:
    space = tmp_path / "tiny_space.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_latency_model.py", "--space", str(space),
         "--threads", "1", "--n-configs", "4", "--calibrate", "3", "--repeats", "3",
         "--layer-repeats", "3", "--warmup", "1", "--isolation", "lock", "--retest",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with (out / "rows.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (out / "retest-eager.csv").open() as f:
        retest = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {r["digest"] for r in retest} == {r["digest"] for r in rows}
    assert all(float(r["remeasured_ms"]) > 0 for r in retest)
    summary = (out / "summary.md").read_text()
    assert "| tiny_space | eager |" in summary
    assert "Test-retest (the same 4 networks measured again, reverse order)" in summary
