"""Benchmark scripts run as shipped, on tiny inputs (their numbers are not checked here; they
live in benchmarks/README.md)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    assert all(r["reference"] == "True" for r in rows)  # timed beside the drift reference
    assert "| tiny_space | eager |" in summary and "| 1 | True | 4 |" in summary
    assert "Test-retest (the same 4 networks measured again, reverse order)" in summary


def _run(*args: str, exit_code: int = 0) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == exit_code, proc.stderr[-2000:]
    return proc.stdout


def test_table_benchmarks_run_on_a_table(tmp_path: Path) -> None:
    """bench_table_quality, bench_search, bench_early_stopping and bench_scores on a two-seed
    table, as the README runs them on the real one (smaller budgets)."""
    from tables import synthetic_table

    table = synthetic_table(tmp_path, seeds=(0, 1), latency=True)
    # exit 1: a made-up table misses targets (no factors, so no dimension has an effect)
    plot = tmp_path / "quality.png"
    quality = _run("benchmarks/bench_table_quality.py", str(table), "--plot", str(plot),
                   exit_code=1)  # fmt: skip
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot written to {plot}" in quality
    # seed 1 is seed 0 shifted by one point: the rankings agree exactly
    assert "| Spearman seed rankings, all | 1 | >= 0.85 | yes |" in quality
    assert "| between-seed std (points) | 0.707 | <= 3 | yes |" in quality
    assert "| dimensions with effect > 2x seed std | 0 | >= 4 | NO |" in quality
    assert "not memorised: n/a (the table has no train_top1 column)" in quality
    assert "- rankings (all): true means spread with sd" in quality
    # every pair differs by exactly 1: robust sd 1.4826 / sqrt 2, rms sd 1 / sqrt 2
    assert (
        "- seed noise: robust sd 1.05 (1.4826 x median |a - b| / sqrt 2) against rms sd 0.71; "
        "0 of 12 pairs" in quality
    )
    search = _run("benchmarks/bench_search.py", str(table), "--reps", "2", "--trials", "10",
                  "--samplers", "random,tpe", "--out", str(tmp_path / "search"))  # fmt: skip
    rows = [line for line in search.splitlines() if line.startswith(("| random", "| tpe"))]
    assert len(rows) == 2 and "hv@10" in search and "hv@25" not in search
    assert (tmp_path / "search" / "curves_random.npy").exists()
    # the table's space has 5 networks: a study runs until all 5 are trained (reused
    # proposals do not count); --attempts 1 stops at 5 trials, reused ones included
    for attempts in ("20", "1"):
        out = _run("benchmarks/bench_search.py", str(table), "--reps", "1", "--trials", "5",
                   "--samplers", "random", "--attempts", attempts,
                   "--out", str(tmp_path / f"search{attempts}"))  # fmt: skip
        row = next(line for line in out.splitlines() if line.startswith("| random"))
        used, trained = row.split("|")[-3].replace("trained)", "").split("(")
        if attempts == "20":
            assert int(trained) == 5 and int(used) >= 5, row
        else:
            assert int(used) == 5 and int(trained) <= 5, row
    stopping = _run("benchmarks/bench_early_stopping.py", str(table), "--reps", "2",
                    "--trials", "8", "--long", "12", "--pruners", "none,moasha,pareto,pareto:0",
                    "--out", str(tmp_path / "stop"))  # fmt: skip
    equal_trials, equal_hv = stopping.split("At equal hypervolume")
    lines = {line.split("|")[1].strip(): line for line in equal_trials.splitlines()
             if line.startswith("| ")}  # fmt: skip
    assert {"none", "moasha", "pareto", "pareto:0"} <= set(lines)
    assert "1.00x" in lines["none"]
    # no pruning reaches its own hypervolume level in every repetition
    reached = [line for line in equal_hv.splitlines() if line.startswith("| none |")]
    assert len(reached) == 1 and reached[0].count("(2/2)") >= 1
    assert (tmp_path / "stop" / "hv_vs_epochs.png").stat().st_size > 0
    # --report prints the same tables from the saved results, running nothing
    again = _run("benchmarks/bench_early_stopping.py", str(table), "--trials", "8", "--report",
                 str(tmp_path / "stop" / "results.json"))  # fmt: skip
    assert again.split("At equal trials", 1)[1] == stopping.split("At equal trials", 1)[1]
    scores = _run("benchmarks/bench_scores.py", "--table", str(table), "--spec",
                  str(table.with_suffix(".toml")), "--reps", "2", "--budgets", "3,5",
                  "--bootstrap", "20")  # fmt: skip
    assert "| synflow |" in scores and "| gflops (baseline) |" in scores
    # every pick list ran as a tabular study; "random" is pool 1
    assert "| random | 1 |" in scores and "| naswot | 8 |" in scores


def test_live_pruning_runs_two_real_studies_with_workers(tmp_path: Path) -> None:
    import json

    out = _run("benchmarks/bench_live_pruning.py", "--trials", "2", "--workers", "2",
               "--set", "train.epochs=2", "--set", "data.num_train_clips=32",
               "--set", "data.num_val_clips=32", "--out", str(tmp_path / "live.json"))  # fmt: skip
    assert "| none |" in out and "| pareto |" in out
    results = {r["pruner"]: r for r in json.loads((tmp_path / "live.json").read_text())}
    for r in results.values():
        assert r["complete"] == 2 and r["sampled"] >= 2 and r["wall_s"] > 0
        assert 0 < r["hv"] <= 1
    assert results["none"]["pruned"] == 0 and results["none"]["epochs"] == 4


def test_pilot_recipes_trains_table_architectures_with_a_recipe(tmp_path: Path) -> None:
    recipe = '{"ntrain": 16, "epochs": 2, "seeds": [0], "digests": ["a2aacdf52193", "nope"]}'
    out = _run("benchmarks/pilot_recipes.py", recipe)
    lines = out.splitlines()
    assert lines[0].startswith("a2aacdf52193 table ") and lines[0].count("[") == 2  # one curve
    assert "nope: not in benchmarks/tables/bench_table.csv; skipped" in lines[1]
    # fresh clips, two seeds and a retrain with 2 threads, kept as JSON lines and summarised
    jsonl = tmp_path / "pilots.jsonl"
    fresh = ('{"ntrain": 16, "epochs": 2, "fresh": true, "classes": 16, "threads": [2], '
             '"digests": ["a2aacdf52193"]}')  # fmt: skip
    line = _run("benchmarks/pilot_recipes.py", fresh, "--out", str(jsonl)).splitlines()[0]
    assert " | 2 threads " in line and line.count("[") == 3  # two curves
    summary = _run("benchmarks/pilot_recipes.py", "--summary", str(jsonl))
    assert summary.startswith('{"classes": 16, "epochs": 2, "fresh": true, "ntrain": 16}: 1 ')
    assert "seed gap mean" in summary and "threads |diff| mean" in summary


def test_committed_scores_are_what_r3dnas_score_computes() -> None:
    """benchmarks/tables/bench_scores.csv holds r3dnas score's output for the table's spec: a
    sample of its rows scored again agrees (float noise between machines aside)."""
    import math

    from studies.benchmark.score import score_space
    from studies.study.spec import load_spec

    spec = load_spec(ROOT / "benchmarks/tables/bench_table.toml")
    with (ROOT / "benchmarks/tables/bench_scores.csv").open() as f:
        committed = {row["digest"]: row for row in csv.DictReader(f)}
    assert len(committed) == 372
    again = score_space(spec, scores="synflow,naswot,temporal_order", sample=3, seed=0,
                        progress=False)  # fmt: skip
    assert len(again.rows) == 3
    for row in again.rows:
        stored = committed[row.digest]
        for name, value in row.scores.items():
            assert math.isclose(float(stored[name]), value, rel_tol=1e-3), (row.digest, name)


def test_bench_search_compares_cost_aware_with_the_oracle(tmp_path: Path) -> None:
    """The new comparison rows on the synthetic two-seed table (12 networks): cost_aware trains
    a new network at every trial, the oracle is the ceiling, --report prints the same tables."""
    from tables import synthetic_table

    table = synthetic_table(tmp_path, seeds=(0, 1), latency=True)
    out = tmp_path / "search"
    samplers = "cost_aware,cost_aware_nolat,oracle"  # NOTE: gp_distinct: test_cost_aware.py
    search = _run("benchmarks/bench_search.py", str(table), "--reps", "2", "--trials", "10",
                  "--samplers", samplers, "--out", str(out))  # fmt: skip
    rows = {line.split("|")[1].strip(): line for line in search.splitlines()
            if line.startswith("| ")}  # fmt: skip
    assert set(samplers.split(",")) <= set(rows)
    assert "10 (10 trained)" in rows["cost_aware"] and "10 (10 trained)" in rows["oracle"]
    assert "| oracle | 2 | 1.000 ± 0.000 |" in rows["oracle"]
    assert (out / "search.png").stat().st_size > 0
    again = _run("benchmarks/bench_search.py", str(table), "--trials", "10", "--samplers",
                 samplers, "--out", str(out), "--report")  # fmt: skip
    assert again.split("mean ± 95%", 1)[1] == search.split("mean ± 95%", 1)[1]


def test_bench_cost_aware_times_one_proposal() -> None:
    out = _run("benchmarks/bench_cost_aware.py", "--spec", "cpu_default", "--observations",
               "8", "--reps", "1")  # fmt: skip
    assert "186 candidates (complete: True)" in out and "one proposal with 8 observations" in out
    assert "read back by a new process in" in out and "importing SciPy" in out


def test_pilot_recipes_refuses_a_bad_recipe_in_one_line() -> None:
    proc = subprocess.run([sys.executable, "benchmarks/pilot_recipes.py", '{"epoch": 2}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert "recipe: unknown keys ['epoch']; allowed: base, bs, classes" in proc.stderr


@pytest.mark.parametrize(
    ("script", "args", "code", "message"),
    [
        ("bench_early_stopping.py", ["--pruners", "pareto:x"], 1, "only pareto takes a margin"),
        ("bench_early_stopping.py", ["--pruners", "median"], 1, "unknown 'median'"),
        ("bench_early_stopping.py", ["--report", "missing.json"], 2, "--report: no file"),
        ("bench_search.py", ["--attempts", "0"], 2, "--attempts must be >= 1"),
        ("bench_search.py", ["--samplers", "cmaes"], 2, "--samplers: unknown cmaes"),
        (
            "bench_search.py",
            ["--samplers", "random", "--report", "--out", "nowhere"],
            2,
            "--report: nowhere has no saved runs of random",
        ),
    ],
)
def test_table_benchmarks_refuse_bad_options_in_one_line(
    script: str, args: list[str], code: int, message: str
) -> None:
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "benchmarks/tables/bench_table.csv", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == code and message in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr


def test_table_quality_refuses_a_table_of_too_few_networks(tmp_path: Path) -> None:
    header, *rows = (ROOT / "benchmarks/tables/bench_v2.csv").read_text().splitlines(keepends=True)
    digests = [row.split(",", 1)[0] for row in rows]
    pair = next(d for d in digests if digests.count(d) >= 2)  # a network with both seeds
    one = tmp_path / "one.csv"
    one.write_text(header + "".join(r for r, d in zip(rows, digests, strict=True) if d == pair))
    proc = subprocess.run([sys.executable, "benchmarks/bench_table_quality.py", str(one)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("1 architecture(s); the checks need >= 3")


def test_stress_worker_kill_runs_one_scenario() -> None:
    """One run of the worker-kill stress (no busy loops): the kill lands, nothing hangs."""
    out = _run("benchmarks/stress_worker_kill.py", "--runs", "1", "--kill-at", "digest",
               "--deadline", "120")  # fmt: skip
    assert "1 runs, 0 hangs, 0 with a problem (sqlite, 0 hogs, kill at digest)" in out
    assert "6/6 complete" in out


def test_stress_interrupts_runs_one_scenario() -> None:
    """One run of the interrupt stress on a journal file: the SIGTERM lands, the grid resumes."""
    out = _run("benchmarks/stress_interrupts.py", "--runs", "1", "--storage", "journal",
               "--max-delay", "3")  # fmt: skip
    assert out.strip().splitlines()[-1].endswith("; 0 failed")
    assert "run  1: SIGTERM after" in out and " ok" in out


def test_bench_confirm_compares_fronts_with_and_without_confirmation(tmp_path: Path) -> None:
    """bench_confirm on a two-seed table, as benchmarks/README.md runs it on the real one."""
    from tables import synthetic_table

    table = synthetic_table(tmp_path, seeds=(0, 1), latency=True)
    out = _run("benchmarks/bench_confirm.py", str(table), "--reps", "2", "--trials", "6")
    rows = {line.split("|")[2].strip(): line for line in out.splitlines()
            if line.startswith("| 6 |")}  # fmt: skip
    assert set(rows) == {"without", "with", "more search"}
    # seed 1 is seed 0 plus one point for every network: confirmation changes no ranking, and
    # at most ceil(6 / 2) networks get one more seed each
    assert rows["with"].split("|")[3] == rows["without"].split("|")[3]
    extra = float(rows["with"].split("|")[7].split("±")[0])
    assert 1 <= extra <= 3
    (tmp_path / "one").mkdir()
    one_seed = subprocess.run(
        [sys.executable, "benchmarks/bench_confirm.py", str(synthetic_table(tmp_path / "one"))],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert one_seed.returncode == 2
    assert "confirmation needs two" in one_seed.stderr.strip().splitlines()[-1]


def test_table_quality_explains_seed_agreement_by_spread_and_noise() -> None:
    """The quality script's "why": with top-1 = true mean + seed noise, two seeds' rankings
    agree to about signal / (signal + noise). Checked on draws where both are known."""
    import importlib.util

    path = ROOT / "benchmarks" / "bench_table_quality.py"
    module_spec = importlib.util.spec_from_file_location("bench_table_quality", path)
    assert module_spec is not None and module_spec.loader is not None
    quality = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(quality)
    rng = np.random.default_rng(0)
    true = rng.normal(80, 4, size=20_000)
    x, y = true + rng.normal(0, 2, true.size), true + rng.normal(0, 2, true.size)
    found = quality.expected_agreement(x, y)
    assert found["spread_std"] == pytest.approx(4, rel=0.03)
    assert found["seed_std"] == pytest.approx(2, rel=0.03)
    assert found["expected"] == pytest.approx(16 / 20, abs=0.01)
    assert found["expected"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=0.01)
    # no spread at all: nothing to rank, whatever the noise
    assert quality.expected_agreement(x - true, y - true)["expected"] == pytest.approx(0, abs=0.02)
