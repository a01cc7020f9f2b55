"""wandb tracking: real offline runs written to tmp dirs and read back from their ``.wandb`` logs.

No mocks: wandb 0.31 runs offline here, and :mod:`studies.tracking.offline` decodes what it wrote.
One module-scoped study (two trials and the study run) serves the read-back tests, so wandb's
service starts only a few times.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from search_space.errors import ConfigError
from search_space.presets import preset
from studies.tracking.offline import OfflineRun, find_offline_runs, iter_records, read_offline_run
from studies.tracking.tracker import StudyTracker, TrackingConfig

PASSWORD = "Sup3r-S3cret-pw"
STORAGE = f"postgresql+psycopg://optuna:{PASSWORD}@db.lan:5432/studies?sslmode=require"
STUDY = "unit-study"


@dataclass
class Logged:
    """What the module's study sent, to compare with what is read back."""

    wandb_dir: Path
    arch: dict[str, Any]
    params: dict[str, Any]
    spec: dict[str, Any]
    epochs: list[dict[str, float]]
    summary: dict[str, float]
    failure: str
    pareto_rows: list[dict[str, Any]]
    study_summary: dict[str, Any]
    runs: dict[str, OfflineRun]
    errors: list[str]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    root = tmp_path_factory.mktemp("tracked")
    arch = preset("i3d_r50").to_dict()
    params = {"inflate_style": "3x1x1", "with_pool2": True, "lr": 0.01}
    spec = {
        "study": {"name": STUDY, "storage": STORAGE, "n_trials": 2},
        # ~90 KB of JSON: the run record spans three 32 KiB blocks (FIRST, MIDDLE, LAST)
        "space": {"choices": list(range(20_000))},
    }
    epochs = [{"loss": 2.0 / (e + 1), "top1": 0.1 * (e + 1)} for e in range(3)]
    summary = {"top1": 0.3, "gflops": 43.5, "latency_ms": 120.25, "params_m": 27.2}
    failure = f"TrialFailure: non-finite loss at epoch 1 (storage {STORAGE})"
    pareto_rows = [
        {"trial": 0, "top1": 0.3, "gflops": 43.5, "config": {"inflate": "111-1010"}},
        {"trial": 4, "top1": 0.25, "gflops": 20.0, "latency_ms": float("inf")},
    ]
    study_summary = {"hypervolume": 1.25, "reference_point": [0.0, 100.0], "storage": STORAGE}

    with pytest.MonkeyPatch.context() as mp:
        # wandb copies sys.argv into its run metadata: the CLI's --storage must not leak that way
        mp.setattr(sys, "argv", ["r3dnas", "launch", "--storage", STORAGE])
        tracker = StudyTracker(TrackingConfig(dir=root), study_name=STUDY)
        run = tracker.trial_run(0, config=arch, params=params, spec=spec)
        for epoch, metrics in enumerate(epochs):
            run.log_epoch(epoch, metrics)
        run.finish(state="complete", summary=summary)
        with tracker.trial_run(1, config=arch, params=params, spec=spec) as failed:
            failed.log_epoch(0, {"loss": 2.5})
            failed.finish(state="failed", summary={}, reason=failure)
        with (
            pytest.raises(KeyboardInterrupt),
            tracker.trial_run(2, config=arch, params=params, spec=spec),
        ):
            raise KeyboardInterrupt  # Ctrl-C mid-trial: the run is closed as failed
        tracker.log_study(pareto_rows, study_summary, config={"spec": spec})
        tracker.close()

    runs = {r.name: r for r in map(read_offline_run, find_offline_runs(root))}
    return Logged(
        wandb_dir=root / "wandb",
        arch=arch,
        params=params,
        spec=spec,
        epochs=epochs,
        summary=summary,
        failure=failure,
        pareto_rows=pareto_rows,
        study_summary=study_summary,
        runs=runs,
        errors=list(tracker.errors),
    )


def test_study_writes_one_run_per_trial_and_one_study_run(logged: Logged) -> None:
    assert logged.errors == []
    assert sorted(logged.runs) == ["study", "trial-0", "trial-1", "trial-2"]
    assert {r.group for r in logged.runs.values()} == {STUDY}
    assert {r.project for r in logged.runs.values()} == {"r3dnas"}
    assert [logged.runs[n].job_type for n in ("trial-0", "trial-1", "study")] == [
        "trial",
        "trial",
        "study",
    ]
    assert all(r.path.parent.name.startswith("offline-run-") for r in logged.runs.values())


def test_trial_run_reads_back_field_by_field(logged: Logged) -> None:
    run = logged.runs["trial-0"]
    assert run.exit_code == 0
    assert set(run.config) == {"study", "trial", "arch", "params", "spec"}
    assert run.config["study"] == STUDY
    assert run.config["trial"] == 0
    assert run.config["arch"] == logged.arch
    assert run.config["params"] == logged.params
    assert run.config["spec"]["space"] == logged.spec["space"]
    assert run.config["spec"]["study"]["storage"] == STORAGE.replace(PASSWORD, "***")

    assert [row["_step"] for row in run.history] == [0, 1, 2]
    assert [{k: v for k, v in row.items() if not k.startswith("_")} for row in run.history] == [
        {"epoch": epoch, **metrics} for epoch, metrics in enumerate(logged.epochs)
    ]
    for key, value in logged.summary.items():
        assert run.summary[key] == value
    assert run.summary["loss"] == logged.epochs[-1]["loss"]  # last logged value stays
    assert run.summary["state"] == "complete"
    assert "reason" not in run.summary


def test_failed_trial_records_reason_and_nonzero_exit(logged: Logged) -> None:
    run = logged.runs["trial-1"]
    assert run.exit_code == 1
    assert run.summary["state"] == "failed"
    assert run.summary["reason"] == logged.failure.replace(PASSWORD, "***")
    assert [row["loss"] for row in run.history] == [2.5]


def test_trial_run_left_by_an_exception_finishes_as_failed(logged: Logged) -> None:
    run = logged.runs["trial-2"]
    assert run.exit_code == 1
    assert run.summary["state"] == "failed"
    assert run.summary["reason"].startswith("KeyboardInterrupt")


def test_study_run_holds_the_pareto_table(logged: Logged) -> None:
    run = logged.runs["study"]
    assert run.exit_code == 0
    assert run.summary["n_pareto"] == 2
    assert run.summary["hypervolume"] == 1.25
    assert run.summary["reference_point"] == [0.0, 100.0]
    assert run.read_table("pareto") == [
        {
            "trial": 0,
            "top1": 0.3,
            "gflops": 43.5,
            "config": '{"inflate": "111-1010"}',
            "latency_ms": None,
        },
        {"trial": 4, "top1": 0.25, "gflops": 20.0, "config": None, "latency_ms": "inf"},
    ]
    with pytest.raises(ConfigError, match="hypervolume"):
        run.read_table("hypervolume")


def test_no_password_in_any_file_wandb_wrote(logged: Logged) -> None:
    files = [p for p in logged.wandb_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".wandb" for p in files)
    leaks = [p for p in files if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []
    # the masked URL did reach the run: redaction, not omission
    assert b"optuna:***@db.lan" in logged.runs["trial-0"].path.read_bytes()


def test_records_larger_than_a_block_are_reassembled(logged: Logged) -> None:
    path = logged.runs["trial-0"].path
    kinds = _fragment_types(path.read_bytes())
    assert {2, 3, 4} <= set(kinds)  # FIRST, MIDDLE, LAST all occur
    assert logged.runs["trial-0"].config["spec"]["space"]["choices"][-1] == 19_999


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    tracker = StudyTracker(TrackingConfig(mode="disabled", dir=tmp_path / "w"), study_name="s")
    run = tracker.trial_run(0, config={"a": 1}, params={}, spec={})
    run.log_epoch(0, {"loss": 1.0})
    run.finish(state="complete", summary={"top1": 0.5})
    tracker.log_study([{"trial": 0}], {})
    tracker.close()
    assert not run.active and run.run_id is None
    assert tracker.errors == []
    assert list(tmp_path.iterdir()) == []


class _NotJson:
    def __repr__(self) -> str:
        return "<NotJson>"


def test_unserialisable_value_is_recorded_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = StudyTracker(TrackingConfig(dir=tmp_path), study_name="s")
    with caplog.at_level(logging.WARNING, logger="studies.tracking.tracker"):
        run = tracker.trial_run(3, config={"a": 1}, params={}, spec={})
        run.log_epoch(0, {"loss": 1.0})
        run.log_epoch(1, {"loss": _NotJson()})
        run.log_epoch(2, {"loss": 0.5})
        run.finish(state="complete", summary={"top1": 0.5, "bad": _NotJson()})
    tracker.close()
    assert len(tracker.errors) == 2
    assert "trial 3 epoch 1" in tracker.errors[0] and "JSON serializable" in tracker.errors[0]
    assert "summary of trial 3" in tracker.errors[1]
    assert "JSON serializable" in caplog.text
    (read,) = map(read_offline_run, find_offline_runs(tmp_path))
    assert [row["loss"] for row in read.history] == [1.0, 0.5]
    assert read.exit_code == 0  # the run was still finished


def test_unwritable_dir_is_recorded_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tracker = StudyTracker(TrackingConfig(dir=blocker / "sub"), study_name="s")
    run = tracker.trial_run(0, config={}, params={}, spec={})
    run.log_epoch(0, {"loss": 1.0})
    run.finish(state="failed", summary={}, reason="boom")
    tracker.log_study([], {})
    tracker.close()
    assert not run.active
    assert not tracker.enabled
    assert len(tracker.errors) == 1 and "setup failed" in tracker.errors[0]
    assert "a-file" in tracker.errors[0]


def test_online_without_credentials_never_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    tracker = StudyTracker(TrackingConfig(mode="online", dir=tmp_path / "w"), study_name="s")
    run = tracker.trial_run(0, config={}, params={}, spec={})
    run.finish(state="complete", summary={})
    assert not run.active
    assert len(tracker.errors) == 1 and "WANDB_API_KEY" in tracker.errors[0]
    assert find_offline_runs(tmp_path / "w") == []


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("wandb.mode", {"mode": "offlin"}),
        ("wandb.project", {"project": ""}),
        ("wandb.entity", {"entity": ""}),
        ("wandb.dir", {"dir": 3}),
    ],
)
def test_tracking_config_validation(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=field):
        TrackingConfig(**kwargs)


def test_tracking_config_from_dict() -> None:
    cfg = TrackingConfig.from_dict({"mode": "online", "project": "p", "entity": "me"})
    assert cfg == TrackingConfig(mode="online", project="p", entity="me")
    assert TrackingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"projekt.*\[wandb\]"):
        TrackingConfig.from_dict({"projekt": "p"})


def test_finish_rejects_unknown_state(tmp_path: Path) -> None:
    tracker = StudyTracker(TrackingConfig(mode="disabled"), study_name="s")
    run = tracker.trial_run(0, config={}, params={}, spec={})
    with pytest.raises(ConfigError, match="state must be one of.*'complete'.*got 'done'"):
        run.finish(state="done", summary={})  # type: ignore[arg-type]


def test_reader_rejects_foreign_and_corrupt_files(logged: Logged, tmp_path: Path) -> None:
    good = logged.runs["trial-1"].path.read_bytes()

    foreign = tmp_path / "run-x.wandb"
    foreign.write_bytes(b"SQLite format 3\x00" + good[16:])
    with pytest.raises(ConfigError, match="not a wandb transaction log"):
        read_offline_run(foreign)

    corrupt = tmp_path / "run-y.wandb"
    flipped = bytearray(good)
    flipped[200] ^= 0xFF
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ConfigError, match="checksum mismatch"):
        read_offline_run(corrupt)

    with pytest.raises(ConfigError, match="does not exist"):
        read_offline_run(tmp_path / "missing")


def test_reader_stops_quietly_at_a_cut_off_record(logged: Logged, tmp_path: Path) -> None:
    good = logged.runs["trial-1"].path.read_bytes()
    cut = tmp_path / "run-z.wandb"
    cut.write_bytes(good[:-5])  # the exit record, half written
    run = read_offline_run(cut)
    assert run.exit_code is None
    assert run.name == "trial-1"
    assert len(list(iter_records(cut))) == len(list(iter_records(logged.runs["trial-1"].path))) - 1


def _fragment_types(data: bytes) -> list[int]:
    """The leveldb-log fragment types in a .wandb file, walked independently of the reader."""
    kinds, pos = [], 7
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kinds.append(data[pos + 6])
        pos += 7 + length
    return kinds
