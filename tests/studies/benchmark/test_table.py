"""The tabular benchmark's life cycle on a tiny space, through the real study machinery:
build (every architecture x seed), latency pass, export (CSV + the spec beside it), load,
retrain a row (identical top-1 on CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import tomllib
from pathlib import Path

import optuna
import pytest
from cli_runs import files_under
from study_specs import TABLE_SPACE, merged, spec_toml

from runners.scores.tabular import COLUMNS, BenchmarkTable
from search_space.errors import ConfigError
from studies.benchmark.table import export_table
from studies.cli import main
from studies.run.launch import launch
from studies.study.record import StudyRecord
from studies.study.sections import StudySpec
from studies.study.spec import load_spec
from studies.study.toml_text import dumps_toml

TINY_TABLE = merged(
    TABLE_SPACE,
    study={"name": "tiny-table", "sampler": "grid"},
    data={"num_classes": 8, "num_val_clips": 16, "noise": 0.1, "seed": 0},
    train={"epochs": 2, "optimizer": "adamw", "lr": 0.003},
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny table built with 2 seeds, timed and exported once for this module's tests."""
    folder = tmp_path_factory.mktemp("table")
    previous = Path.cwd()
    os.chdir(folder)
    try:
        spec = folder / "tiny_table.toml"
        spec.write_text(spec_toml(TINY_TABLE))
        storage = f"sqlite:///{folder / 'table.db'}"
        study = ["--study", "tiny-table", "--storage", storage]
        assert main(["table", "build", str(spec), "--seeds", "2", "--storage", storage,
                     "-q"]) == 0  # fmt: skip
        assert main(["table", "latency", *study, "--repeats", "3", "--warmup", "1",
                     "--isolation", "none", "-q"]) == 0  # fmt: skip
        out = folder / "tables" / "tiny.csv"
        assert main(["table", "export", *study, "--out", str(out)]) == 0
    finally:
        os.chdir(previous)
    return out, storage


def test_build_latency_export_retrain(
    exported: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = exported
    table = BenchmarkTable.load(out)
    # 2 x 2 grid points, but with layer4 not inflated both styles build one network: 3 x 2 seeds
    assert len(table.digests) == 3 and table.seeds == (0, 1) and len(table) == 6
    header = out.read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    for row in table.rows:
        assert len(row.val_top1) == len(row.train_loss) == len(row.train_top1) == row.epochs == 2
        assert all(0 <= t <= 100 for t in row.train_top1)
        assert row.val_top1[-1] == row.top1
        assert 0 <= row.top1 <= 100 and row.gflops > 0 and row.train_s > 0
        assert math.isfinite(row.latency_ms) and row.latency_ms > 0 and row.latency_threads == 1
        assert "torch" in row.versions and set(row.factors) == {"layer4.inflate", "inflate_style"}
    # the network with nothing inflated is built by both inflate styles; its rows name the
    # canonical one, whichever grid point each seed's trial came from; 8 classes keep top-5
    plain = [r for r in table.rows if r.factors["layer4.inflate"] == "none"]
    assert len(plain) == 2 and {r.factors["inflate_style"] for r in plain} == {"3x1x1"}
    assert all(0 <= r.top5 <= 100 for r in table.rows)
    # the two seeds of one network are different runs
    first = table.digests[0]
    assert table.lookup(first, 0) != table.lookup(first, 1)

    # the spec beside the table is a spec r3dnas loads, equal to the one that built it
    spec_text = out.with_suffix(".toml").read_text()
    assert tomllib.loads(spec_text)["data"]["kind"] == "motion_events"

    # honesty: a row retrained from its stored config and seed gives the stored top-1
    assert main(["table", "retrain", "--table", str(out), "--digest", first[:8],
                 "--seed", "1"]) == 0  # fmt: skip
    # each row records the setup that decides bit-identity
    assert {"cpu", "train_threads", "torch", "mmcv"} <= set(table.lookup(first, 1).versions)
    # another thread count: the cheap proxy of another CPU type, said in the output
    main(["table", "retrain", "--table", str(out), "--digest", first[:8], "--threads", "2"])
    line = capsys.readouterr().out.splitlines()[-1]
    assert (
        line.startswith(f"architecture {first} seed 0: top1 ") and "train_threads 1 -> 2" in line
    )


def test_a_third_seed_on_a_subset_joins_the_export(exported: tuple[Path, str]) -> None:
    """The documented second pass: the same spec with ``[train] seed = 2`` over the first
    networks of the build's seeded order, in its own study, exported with ``--with``."""
    out, storage = exported
    spec = out.parents[1] / "tiny_table.toml"
    base = ["--storage", storage, "--seeds", "1", "--limit", "1", "-q"]
    assert main(["table", "build", str(spec), "--study", "tiny-s2", "--set", "train.seed=2",
                 *base]) == 0  # fmt: skip
    merged = out.with_name("merged.csv")
    assert main(["table", "export", "--study", "tiny-table", "--storage", storage,
                 "--with", "tiny-s2", "--out", str(merged)]) == 0  # fmt: skip
    table, two = BenchmarkTable.load(out), BenchmarkTable.load(merged)
    third = [r for r in two.rows if r.seed == 2]
    assert two.seeds == (0, 1, 2) and len(two) == len(table) + 1 and len(third) == 1
    # the build's order is seeded: the third seed went to the network trained first
    assert third[0].digest in table.digests
    # a study with another recipe is refused, naming the section, before anything is written
    assert main(["table", "build", str(spec), "--study", "tiny-bad", "--set", "train.seed=3",
                 "--set", "train.epochs=1", *base]) == 0  # fmt: skip
    bad = out.with_name("bad.csv")
    with pytest.raises(ConfigError, match=r"'tiny-bad'.* differs .* in \[train\] \(only"):
        other = optuna.load_study(study_name="tiny-bad", storage=storage)
        export_table(optuna.load_study(study_name="tiny-table", storage=storage), bad,
                     extra=[other])  # fmt: skip
    assert not bad.exists()


def test_a_table_exported_before_train_top1_existed_still_loads(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    import csv

    out, _ = exported
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in COLUMNS if c != "train_top1"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "train_top1"} for r in rows)
    table = BenchmarkTable.load(old)
    assert len(table) == len(rows) and all(r.train_top1 == () for r in table.rows)


def test_committed_tables_name_one_spelling_per_network_and_no_trivial_top5() -> None:
    """Issue 23 item 4, in the files users read: a network with nothing inflated has one
    inflate style in all its rows, and a 4-class table has no top-5 (100 by construction)."""
    root = Path(__file__).resolve().parents[3] / "benchmarks" / "tables"
    table = BenchmarkTable.load(root / "bench_table.csv")
    styles: dict[str, set[str]] = {}
    for row in table.rows:
        styles.setdefault(row.digest, set()).add(row.factors["inflate_style"])
        assert math.isnan(row.top5)
    assert all(len(s) == 1 for s in styles.values())
    assert styles["01b5485c0258"] == {"3x1x1"}
    # the second table records training top-1 per epoch, and top-5 only where it means something
    v2 = BenchmarkTable.load(root / "bench_v2.csv")
    spec = load_spec(root / "bench_v2.toml")
    # complete (issue 23): every network of the space with seeds 0 and 1, a third on >= 50
    assert len(v2.digests) == spec.space.size() == 192 and v2.seeds == (0, 1, 2)
    assert all(v2.lookup(d, s) is not None for d in v2.digests for s in (0, 1))
    assert sum(v2.lookup(d, 2) is not None for d in v2.digests) >= 50
    assert v2.full_seeds == (0, 1)  # what a simulated search may look up for any network
    dims = set(spec.space.param_names())
    for row in v2.rows:
        if spec.data.num_classes <= 5:
            assert math.isnan(row.top5)
        else:
            assert 0 <= row.top5 <= 100 and row.top5 >= row.top1
        assert len(row.train_top1) == len(row.val_top1) == row.epochs == spec.train.epochs
        assert set(row.factors) == dims


def _copy_with(out: Path, folder: Path, digest: str, **changes: object) -> Path:
    """A copy of the table (and its spec) whose row ``digest`` seed 1 records other values:
    what a table built on another machine holds."""
    import csv
    import shutil

    copy = folder / "copy.csv"
    shutil.copy(out.with_suffix(".toml"), copy.with_suffix(".toml"))
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["digest"] == digest and row["seed"] == "1":
            versions = json.loads(row["versions"])
            versions["cpu"] = changes.get("cpu", versions["cpu"])
            row["versions"] = json.dumps(versions)
            row["top1"] = repr(float(row["top1"]) + float(changes.get("add_top1", 0.0)))
    with copy.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return copy


def test_retrain_on_another_cpu_is_judged_against_the_seed_spread(
    exported: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = exported
    table = BenchmarkTable.load(out)
    first = table.digests[0]
    pairs = [(table.lookup(d, 0).top1, table.lookup(d, 1).top1) for d in table.digests]  # type: ignore[union-attr]
    sd = statistics.stdev((a - b) / math.sqrt(2) for a, b in pairs)
    capsys.readouterr()
    # same numbers, another CPU model on record: no bit-identity claimed, the spread judges
    copy = _copy_with(out, tmp_path, first, cpu="Fake CPU 9000")
    argv = ["table", "retrain", "--table", str(copy), "--digest", first, "--seed", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "another setup (cpu Fake CPU 9000 -> " in text and "identical" not in text
    assert f"seed sd {sd:.4g} (from 3 pairs)" in text and ": within" in text
    # a difference far beyond twice the spread fails, with the numbers
    copy = _copy_with(out, tmp_path, first, cpu="Fake CPU 9000", add_top1=4 * sd + 10)
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert ": OUTSIDE" in text and "difference -" in text


def test_latency_pass_times_again_what_another_protocol_timed(
    exported: tuple[Path, str],
) -> None:
    _, storage = exported
    study = optuna.load_study(study_name="tiny-table", storage=storage)
    before = StudyRecord(study).table_latency
    assert {entry["reference"] for entry in before.values()} == {True}  # the default
    args = ["table", "latency", "--study", "tiny-table", "--storage", storage,
            "--repeats", "3", "--warmup", "1", "--isolation", "none", "-q"]  # fmt: skip
    assert main([*args, "--no-reference"]) == 0
    raw = StudyRecord(optuna.load_study(study_name="tiny-table", storage=storage)).table_latency
    assert set(raw) == set(before) and {e["reference"] for e in raw.values()} == {False}
    assert main([*args, "--no-reference"]) == 0  # nothing left to time: unchanged
    again = StudyRecord(optuna.load_study(study_name="tiny-table", storage=storage)).table_latency
    assert again == raw


def _tabular_spec(table: Path, **study: object) -> StudySpec:
    overrides = [f'study.table="{table}"', 'study.sampler="random"', "study.n_trials=6"]
    overrides += [f"study.{k}={json.dumps(v)}" for k, v in study.items()]
    return load_spec(table.with_suffix(".toml"), overrides=overrides)


def test_tabular_mode_reads_the_table_through_the_study_machinery(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = exported
    table = BenchmarkTable.load(out)
    # every network of the table trained once (the budget counts trainings, not reuses)
    networks = len(table.digests)
    spec = _tabular_spec(out, objectives=["top1:max", "gflops:min", "latency_ms:min"],
                         n_trials=networks)  # fmt: skip
    url = f"sqlite:///{tmp_path / 'tabular.db'}"
    result = launch(spec, storage=url, study_name="tabular", wandb_mode="disabled",
                    progress=False, runs_dir=tmp_path, print_pareto=False)  # fmt: skip
    assert result.completed == networks and result.stopped == "done"
    study = optuna.load_study(study_name="tabular", storage=url)
    for trial in study.trials:
        row = table.lookup(trial.user_attrs["digest"], 0)
        assert row is not None
        # a reused trial is PRUNED for Optuna (one point per network) and copies the metrics
        values = trial.values or [trial.user_attrs[k] for k in ("top1", "gflops", "latency_ms")]
        assert values == [row.top1, row.gflops, row.latency_ms]
        if trial.user_attrs["state"] == "complete":  # measured here, not reused
            assert [h["val_top1"] for h in trial.user_attrs["history"]] == list(row.val_top1)
            assert trial.user_attrs["timings"]["train_s"] == row.train_s
            assert trial.user_attrs["timings"]["simulated"] == 1.0
            assert "checkpoint" not in trial.user_attrs  # nothing trained, nothing kept


def test_tabular_mode_prunes_on_the_stored_curve_and_fails_missing_rows(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = exported
    table = BenchmarkTable.load(out)
    spec = _tabular_spec(out, objectives=["top1:max"], pruner="median", n_startup_trials=0)
    url = f"sqlite:///{tmp_path / 'pruned.db'}"
    launch(spec, storage=url, study_name="pruned", wandb_mode="disabled", progress=False,
           runs_dir=tmp_path, print_pareto=False)  # fmt: skip
    study = optuna.load_study(study_name="pruned", storage=url)
    measured = [t for t in study.trials if t.user_attrs.get("state") in ("complete", "pruned")]
    assert measured
    for trial in measured:
        row = table.lookup(trial.user_attrs["digest"], 0)
        assert row is not None
        curve = dict(enumerate(row.val_top1, 1))
        # the pruner saw the stored curve, epoch by epoch (all of it, or up to where it stopped)
        assert trial.intermediate_values == {e: curve[e] for e in trial.intermediate_values}
        ran = max(trial.intermediate_values)
        assert trial.user_attrs["timings"]["train_s"] == pytest.approx(row.train_s * ran / 2)

    missing = dataclasses.replace(spec, train=spec.train.replace(seed=7))  # no row has seed 7
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    launch(missing, storage=url, study_name="missing", wandb_mode="disabled", progress=False,
           runs_dir=tmp_path, print_pareto=False, n_trials=1)  # fmt: skip
    study = optuna.load_study(study_name="missing", storage=url)
    reasons = {t.user_attrs.get("fail_reason", "") for t in study.trials}
    assert any("seed 7 is not in the table" in r and "only seeds [0, 1]" in r for r in reasons)


def test_table_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "export", "--storage", f"sqlite:///{tmp_path / 'no.db'}",
                 "--study", "x", "--out", "t.csv"]) == 2  # fmt: skip
    assert not (tmp_path / "no.db").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        BenchmarkTable.load(tmp_path / "missing.csv")
    assert main(["table", "retrain", "--table", str(tmp_path / "missing.csv"),
                 "--digest", "abc"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("r3dnas") for line in err)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("folder", "--out must be a file path, not an existing folder; got "),
        ("", "--out must be a file path; got ''"),
        ("t.toml", "--out must not end in .toml: the table's spec is written beside it as .toml"),
    ],
)
def test_export_refuses_an_out_it_cannot_write(
    exported: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    out: str,
    message: str,
) -> None:
    """A folder left ``folder.tmp`` behind; ``t.toml`` was the CSV, then overwritten by the
    spec."""
    _, storage = exported
    (tmp_path / "folder").mkdir()
    argv = ["table", "export", "--study", "tiny-table", "--storage", storage, "--out"]
    assert main([*argv, str(tmp_path / out) if out else ""]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"r3dnas table: error: {message}")
    assert files_under(tmp_path) == ["folder"]


def test_toml_writer_round_trips_specs() -> None:
    assert tomllib.loads(dumps_toml(TINY_TABLE, header="a header\nof two lines")) == TINY_TABLE
    with pytest.raises(ConfigError, match="data.noise"):
        dumps_toml({"data": {"noise": float("nan")}})


def test_full_seeds_are_the_seeds_every_network_has(tmp_path: Path) -> None:
    """A third seed on a subset (bench_v2's) is a seed a simulated search must not draw."""
    from tables import synthetic_table

    table = BenchmarkTable.load(synthetic_table(tmp_path, seeds=(0, 1, 2)))
    assert table.full_seeds == (0, 1, 2)
    dropped = table.digests[0]
    partial = BenchmarkTable(r for r in table.rows if (r.digest, r.seed) != (dropped, 1))
    assert partial.seeds == (0, 1, 2) and partial.full_seeds == (0, 2)
