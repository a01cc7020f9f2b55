"""Several workers on one study, over every real storage backend, with a worker killed.

The same tests run over SQLite, a journal file and PostgreSQL (when
``R3DNAS_TEST_POSTGRES_URL`` names a server: ``.ci/run`` starts one on loopback).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search_space import ConfigError, ResNet3dConfig
from studies.run.budget import is_completed, is_counted, was_cut_short
from studies.run.launch import prepare_study
from studies.study.spec import parse_spec
from studies.study.storage import display_url, resolve_storage_url, storage_settings

TINY = Path(__file__).parents[1] / "specs" / "tiny.toml"


def _spec(epochs: int) -> object:
    data = tomllib.loads(TINY.read_text())
    data["train"]["epochs"] = epochs
    return parse_spec(data, source="tiny", base_dir=Path.cwd())


# NOTE: the tests that stop a worker mid-training find a trial between its first epoch and its
# result, and signal it. Tiny trials train an epoch in ~25 ms here; with 4 epochs that window
# was ~0.1 s against a 0.2 s poll, and a faster machine's CI signalled a trial already
# finished. 16 epochs and a 0.05 s poll give the window 8 polls.
TRAINING_EPOCHS = 16

Worker = Callable[..., "subprocess.Popen[bytes]"]
_started: list[subprocess.Popen[bytes]] = []


def _worker(name: str, url: str, grace_s: int = 10, *extra: str) -> subprocess.Popen[bytes]:
    """A worker process (in a session of its own; the ``workers`` fixture ends it); the kill
    test shortens the grace period to see the retry sooner."""
    code = "import sys; from studies.cli import main; sys.exit(main())"
    args = ["worker", "--study", name, "--storage", url, "--quiet", "--wandb", "disabled"]
    args += ["--heartbeat", "1", "--grace", str(grace_s), *extra]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def end_workers() -> Iterator[None]:
    """Whatever a test leaves running (it failed, or timed out waiting) is killed with its
    process group, so a failed test never leaves workers polling a deleted study."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_three_workers_one_killed_nothing_lost(storage_url: str, tmp_path: Path) -> None:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    n_trials = 6
    study = prepare_study(
        _spec(epochs=TRAINING_EPOCHS), study_name=name, storage_url=storage_url,
        n_trials=n_trials, runs_dir=tmp_path, settings=storage_settings(1, 5),
    )  # fmt: skip
    workers = {}
    for _ in range(3):
        proc = _worker(name, storage_url, grace_s=5)
        workers[proc.pid] = proc

    # Wait for a trial that is training (config recorded, no result yet) and kill its worker.
    victim = None
    deadline = time.monotonic() + 180
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(t.user_attrs.get("worker", "x:0").rsplit(":", 1)[1])
            if pid in workers and "digest" in t.user_attrs and "state" not in t.user_attrs:
                victim = (t.number, pid)
                break
    assert victim is not None, "no worker was seen training a trial"
    killed_number, pid = victim
    workers[pid].send_signal(signal.SIGKILL)
    killed_at = time.time()
    workers[pid].wait()

    for proc in workers.values():
        _, err = proc.communicate(timeout=300)
        if proc.pid != pid:
            assert proc.returncode == 0, err.decode()[-2000:]

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if is_counted(t)]  # trainings (reuses do not count)
    table = [
        (t.number, t.state.name, t.user_attrs.get("state"), t.system_attrs.get("failed_trial"),
         t.user_attrs.get("worker"), str(t.datetime_start)[11:23], str(t.datetime_complete)[11:23])
        for t in trials
    ]  # fmt: skip
    assert len(complete) == n_trials, f"killed {killed_number} (pid {pid}): {table}"
    killed = trials[killed_number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1, "the dead trial must be retried exactly once"
    retry = retries[0]
    assert is_completed(retry)
    assert retry.params == killed.params
    assert retry.user_attrs["digest"] == killed.user_attrs["digest"]
    retry_delay = retry.datetime_start.timestamp() - killed_at
    assert retry_delay > 0
    print(f"{display_url(storage_url)}: retried trial {killed_number} as {retry.number} "
          f"{retry_delay:.1f} s after the kill")  # fmt: skip
    for t in complete:
        config = ResNet3dConfig.from_dict(t.user_attrs["config"])
        assert config.digest() == t.user_attrs["digest"]
        # a reused trial (recorded PRUNED) carries the metrics it copied, not Optuna values
        values = t.values or [t.user_attrs[k] for k in ("top1", "gflops", "latency_ms")]
        assert len(values) == 3 and all(math.isfinite(v) for v in values)
        assert values[0] == t.user_attrs["top1"]
    other_states = {t.user_attrs.get("state") for t in trials if t.state == TrialState.FAIL}
    assert other_states <= {None, "failed", "over_budget"}


def test_workers_share_the_budget_exactly(storage_url: str, tmp_path: Path) -> None:
    name = f"budget-{uuid.uuid4().hex[:8]}"
    study = prepare_study(
        _spec(epochs=1), study_name=name, storage_url=storage_url, n_trials=4,
        runs_dir=tmp_path, settings=storage_settings(1, 3),
    )  # fmt: skip
    procs = [_worker(name, storage_url) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    complete = [t for t in study.get_trials(deepcopy=False) if is_counted(t)]
    assert len(complete) == 4
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) >= 1


def test_storage_urls_and_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://alice:s3cr%40t@db.example:5432/studies"
    assert display_url(url) == "postgresql+psycopg://alice:***@db.example:5432/studies"
    monkeypatch.setenv("R3DNAS_STORAGE", url)
    assert resolve_storage_url(None, study_name="x") == url
    assert resolve_storage_url("sqlite:///a.db", study_name="x") == "sqlite:///a.db"
    monkeypatch.delenv("R3DNAS_STORAGE")
    assert resolve_storage_url(None, study_name="x", runs_dir="r") == "sqlite:///r/x.db"
    with pytest.raises(ConfigError, match="not supported") as info:
        resolve_storage_url("mysql://bob:hunter2@h/db", study_name="x")
    assert "hunter2" not in str(info.value)


def test_a_bad_postgres_url_is_one_line_without_the_password(tmp_path: Path) -> None:
    from studies.study.storage import open_storage

    with pytest.raises(ConfigError, match="cannot open storage") as info:
        open_storage("postgresql+psycopg://bob:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_worker_on_an_unknown_study_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="other", storage=url)
    proc = _worker("missing", url)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "no study named 'missing'" in err.decode()


def test_two_workers_run_every_ablation_grid_point_once(storage_url: str, tmp_path: Path) -> None:
    from studies.run.ablation import prepare_ablation

    name = f"grid-{uuid.uuid4().hex[:8]}"
    study, total = prepare_ablation(
        _spec(epochs=1), factors=["with_pool2", "layer4.inflate"], seeds=2, study_name=name,
        storage_url=storage_url, runs_dir=tmp_path,
    )  # fmt: skip
    assert total == 8
    procs = [_worker(name, storage_url) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    complete = [t for t in study.get_trials(deepcopy=False) if is_completed(t)]
    points = [
        (t.user_attrs["factors"]["with_pool2"], t.user_attrs["factors"]["layer4.inflate"],
         t.user_attrs["seed"])
        for t in complete
    ]  # fmt: skip
    assert len(points) == 8 and len(set(points)) == 8


def test_a_resumed_ablation_reruns_interrupted_points_and_nothing_off_grid(
    storage_url: str, tmp_path: Path
) -> None:
    """A worker stopped by SIGTERM mid-trial records that trial FAIL ("interrupted"); resuming
    must run that grid point again, and no worker may fill the budget with off-grid trials
    (the benchmark table lost 11 points that way)."""
    from studies.run.ablation import prepare_ablation

    name = f"resume-{uuid.uuid4().hex[:8]}"
    args = dict(factors=["with_pool2", "layer4.inflate"], seeds=2, study_name=name,
                storage_url=storage_url, runs_dir=tmp_path)  # fmt: skip
    spec = _spec(epochs=TRAINING_EPOCHS)
    study, total = prepare_ablation(spec, **args)  # type: ignore[arg-type]
    proc = _worker(name, storage_url)
    deadline = time.monotonic() + 120
    # NOTE: wait for a first epoch on record, so the SIGTERM lands in training (where it is
    # recorded "interrupted") even when the storage is slow to start.
    while not any(
        t.user_attrs.get("history")
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        assert time.monotonic() < deadline, "no trial reached its first epoch"
        time.sleep(0.05)  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    trials = study.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    states = [(t.number, t.state.name, len(t.user_attrs.get("history", []))) for t in trials]
    assert len(failed) == 1, f"the SIGTERM did not land in training: {states}"
    # "interrupted", or no reason where the signal landed inside a storage write (PostgreSQL
    # CI saw it): either way the trial was cut short and is run again
    assert was_cut_short(failed[0])
    assert failed[0].user_attrs.get("fail_reason", "interrupted").startswith("interrupted")

    _, total_again = prepare_ablation(spec, **args)  # type: ignore[arg-type]
    assert total_again == total == 8
    prepare_ablation(spec, **args)  # type: ignore[arg-type]  # idempotent
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    lost = failed[0].user_attrs
    same = [t for t in waiting if t.user_attrs["factors"] == lost["factors"]
            and t.user_attrs["train_seed"] == lost["train_seed"]]  # fmt: skip
    assert len(same) == 1
    proc = _worker(name, storage_url)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    complete = [t for t in study.get_trials(deepcopy=False) if is_completed(t)]
    assert all("factors" in t.user_attrs for t in complete)  # nothing off-grid
    points = {(json.dumps(t.user_attrs["factors"], sort_keys=True), t.user_attrs["seed"])
              for t in complete}  # fmt: skip
    assert len(complete) == len(points) == 8


def test_a_worker_whose_trial_was_reaped_elsewhere_goes_on(tmp_path: Path) -> None:
    """Another worker declares this worker's trial stale mid-run (a late heartbeat on a loaded
    machine): telling the result then fails in Optuna, and the loop must go on, the retry
    re-running the configuration, instead of the worker dying (CI saw this as
    "Cannot tell a FAIL trial")."""
    from studies.run.heartbeat import reap_stale_trials
    from studies.run.loop import run_trials
    from studies.study.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        study_name="reaped", storage=open_storage(f"journal:///{tmp_path}/s.log")
    )
    reaped: list[int] = []

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        x = trial.suggest_int("x", 0, 9)
        if not reaped:  # the first run is declared stale while it trains
            time.sleep(0.05)
            reaped.extend(reap_stale_trials(study, grace_s=0.0))
        return (float(x),)

    stop = run_trials(
        study, objective, n_trials=2, timeout_s=60, progress=False, label="t", reap=lambda: None
    )
    assert stop == "done"
    trials = study.get_trials(deepcopy=False)
    assert [trials[n].state for n in reaped] == [TrialState.FAIL]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == reaped[0]]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == trials[reaped[0]].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2


def _orphan_trial(study: optuna.Study) -> int:
    """A running trial with no heartbeat: the state a worker killed between ``ask()`` and its
    first heartbeat leaves behind (CI saw survivors wait for it forever)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: "Heartbeat ... used with Study.optimize"
        return study.ask().number


def test_a_trial_killed_before_its_first_heartbeat_is_retried(
    storage_url: str, tmp_path: Path
) -> None:
    name = f"orphan-{uuid.uuid4().hex[:8]}"
    study = prepare_study(
        _spec(epochs=1), study_name=name, storage_url=storage_url, n_trials=1,
        runs_dir=tmp_path, settings=storage_settings(1, 2),
    )  # fmt: skip
    orphan = _orphan_trial(study)
    proc = _worker(name, storage_url, 2)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    trials = study.get_trials(deepcopy=False)
    assert trials[orphan].state == TrialState.FAIL
    assert trials[orphan].user_attrs["fail_reason"].startswith("stale: no heartbeat")
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == orphan]
    assert len(retry) == 1 and is_completed(retry[0])


def _beating(study: optuna.Study, number: int, stop: threading.Event) -> threading.Thread:
    """A live trial elsewhere: its heartbeat changes every 0.3 s until ``stop``."""
    from studies.run.heartbeat import HEARTBEAT_KEY

    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)

    def beat() -> None:
        while not stop.wait(0.3):
            with contextlib.suppress(Exception):  # the file may be gone: that is the test
                storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    return thread


def _waiting_worker(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker that waits: the budget's only trial runs (and beats) in this process."""
    path = tmp_path / "study.db"
    url = f"sqlite:///{path}"
    name = "waiting"
    study = prepare_study(
        _spec(epochs=1), study_name=name, storage_url=url, n_trials=1, runs_dir=tmp_path,
        settings=storage_settings(1, 2),
    )  # fmt: skip
    stop = threading.Event()
    _beating(study, _orphan_trial(study), stop)
    proc = _worker(name, url, 2, *extra)
    # NOTE: waiting once it sleeps in its poll loop (imports and loading the study come first).
    deadline = time.monotonic() + 120
    wchan = Path(f"/proc/{proc.pid}/wchan")
    asleep = 0
    while proc.poll() is None and time.monotonic() < deadline and asleep < 3:
        asleep = asleep + 1 if wchan.read_text() == "hrtimer_nanosleep" else 0
        time.sleep(0.4)
    return proc, path


def test_a_waiting_worker_ends_on_sigterm(tmp_path: Path) -> None:
    proc, _ = _waiting_worker(tmp_path)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted" in err.decode()
    print(f"SIGTERM ended a waiting worker in {took:.1f} s")


def test_a_worker_whose_storage_is_gone_says_so_and_exits(tmp_path: Path) -> None:
    proc, path = _waiting_worker(tmp_path)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    path.unlink()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if "gone" in line]
    assert lines == [f"waiting worker {proc.pid}: the study's storage file {path} is gone; "
                     "stopping"], err.decode()[-2000:]  # fmt: skip


def test_a_worker_gives_up_on_a_study_where_nothing_happens(tmp_path: Path) -> None:
    """A running trial that neither beats nor is reaped (here: a grace period longer than the
    stall limit): the waiting worker says so in one line and exits 1."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = prepare_study(
        _spec(epochs=1), study_name="still", storage_url=url, n_trials=1, runs_dir=tmp_path,
    )  # fmt: skip
    _orphan_trial(study)
    proc = _worker("still", url, 1000, "--stall", "3")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err.decode()[-2000:]
    assert "nothing in the study changed for 3 s while waiting for 1 running trial" in (
        err.decode()
    )


def test_a_trial_retried_twice_trains_once_and_the_grid_completes(
    storage_url: str, tmp_path: Path
) -> None:
    """A worker killed mid-trial can be retried by two paths at once: a restart's requeue
    (``retry_of``) and a live worker's stale-trial reaper (``failed_trial``). Issue 23's build
    trained such a point twice, counted both, and ended a grid point short. Now the first
    retry trains, the other ends as a duplicate without training, and every point runs."""
    from studies.run.ablation import prepare_ablation
    from studies.run.budget import count_counted, retry_origin

    name = f"twice-{uuid.uuid4().hex[:8]}"
    args = dict(factors=["with_pool2", "layer4.inflate"], seeds=2, study_name=name,
                storage_url=storage_url, runs_dir=tmp_path)  # fmt: skip
    study, total = prepare_ablation(_spec(epochs=1), **args)  # type: ignore[arg-type]
    cut, later = study.ask(), study.ask()  # two grid points x seeds, then killed
    for trial in (cut, later):
        trial.set_user_attr("fail_reason", "interrupted (Ctrl-C / SIGTERM)")
        study.tell(trial, state=TrialState.FAIL)
    frozen = study.trials[cut.number]
    study.add_trial(optuna.create_trial(  # what the reaper enqueues
        state=TrialState.WAITING, params={}, distributions={}, user_attrs=frozen.user_attrs,
        system_attrs={"failed_trial": cut.number, "retry_history": [cut.number]}))  # fmt: skip
    study.enqueue_trial({}, user_attrs={  # the race: a requeue that did not see it
        "retry_of": cut.number, **{k: frozen.user_attrs[k] for k in
                                   ("enqueued_config", "factors", "train_seed")}})  # fmt: skip
    _, again = prepare_ablation(_spec(epochs=1), **args)  # type: ignore[arg-type]
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    # a restart now sees both retries of the first and retries only the second
    assert again == total == 8
    assert sorted(retry_origin(t) for t in waiting if retry_origin(t) is not None) == [
        cut.number,
        cut.number,
        later.number,
    ]
    proc = _worker(name, storage_url)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if is_completed(t)]
    points = {(json.dumps(t.user_attrs["factors"], sort_keys=True), t.user_attrs["seed"])
              for t in complete}  # fmt: skip
    assert len(complete) == len(points) == 8 == count_counted(trials)
    duplicate = [t for t in trials if t.user_attrs.get("state") == "duplicate"]
    assert len(duplicate) == 1 and duplicate[0].state == TrialState.FAIL
    assert "already retries the same failed trial" in duplicate[0].user_attrs["fail_reason"]
    assert "history" not in duplicate[0].user_attrs  # it trained nothing


def test_budget_counts_the_retries_of_one_failed_trial_once() -> None:
    """Two retries of trial 0 that both completed (a study written before the fix) count once,
    so a resumed grid makes room for the point they crowded out."""
    from studies.run.budget import count_counted, retry_origin

    def trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
        system = {"failed_trial": attrs.pop("failed_trial")} if "failed_trial" in attrs else {}
        made = optuna.create_trial(state=state, values=[1.0] if state.is_finished() and
                                   state != TrialState.FAIL else None,
                                   user_attrs=dict(attrs), system_attrs=system)  # fmt: skip
        made.number = number
        return made

    failed = trial(0, TrialState.FAIL, fail_reason="interrupted")
    by_reaper = trial(1, TrialState.COMPLETE, failed_trial=0)
    by_requeue = trial(2, TrialState.COMPLETE, retry_of=0)
    retry_of_retry = trial(3, TrialState.COMPLETE, retry_of=1)
    other = trial(4, TrialState.COMPLETE)
    assert [retry_origin(t) for t in (failed, by_reaper, by_requeue)] == [None, 0, 0]
    assert count_counted([failed, by_reaper, by_requeue, other]) == 2
    assert count_counted([failed, by_reaper, retry_of_retry, other]) == 2
    assert count_counted([failed, other]) == 1


def test_an_old_study_with_two_completed_retries_summarises_one_row() -> None:
    """A study written before the fix holds both retries, completed: the ablation's table (and
    ``table build``'s count) shows the grid point x seed once, the first retry's."""
    from studies.run.ablation import _trial_table

    study = optuna.create_study(directions=["maximize"])
    attrs = {"factors": {"with_pool2": True}, "seed": 0, "top1": 50.0}
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs=attrs))
    study.add_trial(optuna.create_trial(values=[50.0], user_attrs=attrs,
                                        system_attrs={"failed_trial": 0}))  # fmt: skip
    study.add_trial(optuna.create_trial(values=[51.0], user_attrs={**attrs, "retry_of": 0,
                                                                   "top1": 51.0}))  # fmt: skip
    study.add_trial(
        optuna.create_trial(values=[60.0], user_attrs={**attrs, "seed": 1, "top1": 60.0})
    )
    table = _trial_table(study)
    assert table["trial"].tolist() == [1, 3] and table["top1"].tolist() == [50.0, 60.0]


def test_a_trial_failed_without_a_reason_is_cut_short_and_requeued_once() -> None:
    """A signal inside a storage write leaves FAIL with no reason: it is retried like an
    "interrupted" trial (once), while r3dnas's own failures, which carry a reason, are not."""
    from studies.run.loop import requeue_interrupted

    study = optuna.create_study(directions=["maximize"])
    grid = {"enqueued_config": "{}", "factors": {"with_pool2": True}, "train_seed": 0}
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs=grid))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs={
        **grid, "fail_reason": "over_budget: other workers filled the budget"}))  # fmt: skip
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs={
        **grid, "fail_reason": "interrupted (Ctrl-C / SIGTERM)"}))  # fmt: skip
    assert [was_cut_short(t) for t in study.trials] == [True, False, True]
    assert not any(is_counted(t) for t in study.trials)
    assert requeue_interrupted(study) == 2 and requeue_interrupted(study) == 0
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == [0, 2]
    assert all(t.user_attrs["factors"] == grid["factors"] for t in waiting)
