"""Many workers on one study: ``r3dnas worker`` and ``r3dnas launch --workers N``.

A worker loads an existing study, rebuilds its spec from the study's own record (so every
worker measures the same way) and runs trials until the study's budget of completed trials is
reached. Crash safety:

* RDB storages (SQLite, PostgreSQL): Optuna's heartbeats; a trial whose worker stops beating for
  the grace period is failed and re-enqueued with the same parameters
  (``RetryHeartbeatStaleTrialCallback``; the retry's system attribute ``failed_trial`` names it).
* Journal files, where Optuna has no heartbeat: our own. Each running trial gets a
  ``r3dnas:heartbeat`` timestamp every ``heartbeat_interval`` seconds, and every worker reaps
  running trials whose last beat is older than the grace period the same way. Only the worker
  whose state change succeeds re-enqueues, so a dead trial is retried once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import ConfigError

if TYPE_CHECKING:
    from studies.launch import StopReason

__all__ = ["WorkerResult", "reap_stale_trials", "spawn_workers", "worker"]

HEARTBEAT_KEY = "r3dnas:heartbeat"


def _is_journal(study: Any) -> bool:
    from optuna.storages import JournalStorage

    storage = getattr(study, "_storage", None)
    inner = getattr(storage, "_backend", storage)
    return isinstance(storage, JournalStorage) or isinstance(inner, JournalStorage)


@contextlib.contextmanager
def journal_heartbeat(study: Any, trial: Any, interval_s: float) -> Iterator[None]:
    """Beat for ``trial`` from a daemon thread while the block runs."""
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, time.time())
            stop.wait(interval_s)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def reap_stale_trials(study: Any, *, grace_s: float, max_retry: int = 2) -> list[int]:
    """Fail running trials with no recent heartbeat and re-enqueue their parameters.

    RDB storages delegate to Optuna (``fail_stale_trials``); journal storages use our
    ``r3dnas:heartbeat`` attribute. Returns the trial numbers this call failed.
    """
    import optuna
    from optuna.trial import TrialState

    if not _is_journal(study):
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return []
    storage = study._storage
    now = time.time()
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = t.system_attrs.get(HEARTBEAT_KEY)
        if last is None:
            last = t.datetime_start.timestamp() if t.datetime_start else now
        if now - float(last) <= grace_s:
            continue
        silence = now - float(last)
        try:
            # NOTE: attributes first: a finished trial can no longer be updated. Only the worker
            # whose state change wins (the journal replays one) goes on to re-enqueue.
            storage.set_trial_user_attr(
                t._trial_id, "fail_reason", f"stale: no heartbeat for {silence:.0f} s"
            )
            storage.set_trial_user_attr(t._trial_id, "state", "failed")
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except Exception:  # another worker reaped it first, or it just finished
            continue
        reaped.append(t.number)
        history = list(t.system_attrs.get("retry_history", [])) + [t.number]
        if len(history) > max_retry:
            continue
        system_attrs = {k: v for k, v in t.system_attrs.items() if k != HEARTBEAT_KEY} | {
            "failed_trial": t.number,
            "retry_history": history,
        }
        study.add_trial(
            optuna.create_trial(
                state=TrialState.WAITING,
                params=t.params,
                distributions=t.distributions,
                user_attrs=t.user_attrs,
                system_attrs=system_attrs,
            )
        )
    return reaped


def with_journal_heartbeat(
    study: Any, objective: Callable[[Any], Any], interval_s: float
) -> Callable[[Any], Any]:
    if not _is_journal(study):
        return objective

    def beating(trial: Any) -> Any:
        with journal_heartbeat(study, trial, interval_s):
            return objective(trial)

    return beating


def _spec_for_device(spec: Any, device: str | None) -> Any:
    if device is None:
        return spec
    measure = dataclasses.replace(spec.measure, device=device)
    train = dataclasses.replace(spec.train, device=device)
    return dataclasses.replace(spec, measure=measure, train=train)


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerResult:
    study_name: str
    n_trials: int  # the study's budget of completed trials
    completed: int  # completed trials in the study when this worker stopped
    stopped: StopReason

    @property
    def exit_code(self) -> int:
        from studies.launch import exit_status

        return exit_status(self.stopped, completed=self.completed)


def worker(
    study_name: str | None = None,
    *,
    storage: str | None = None,
    device: str | None = None,
    wandb_mode: str | None = None,
    progress: bool = False,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    runs_dir: str | Path | None = None,
) -> WorkerResult:
    """Join an existing study and run trials until its budget is spent.

    Args:
        study_name: the study (may be left out when the storage holds exactly one).
        runs_dir: where the default storage ``<runs_dir>/<study>.db`` is and wandb runs go
            (default: the folder the study was launched with, for wandb; ``runs`` to find it).
    """
    import optuna
    from optuna.trial import TrialState

    from studies.launch import _tracker, build_pruner, build_sampler, check_data, run_local
    from studies.objective import TrialRunner
    from studies.reproduce import _spec_of
    from studies.storage import locate_study, open_storage

    settings = _settings(heartbeat_s, grace_s)
    study_name, url = locate_study(study_name, storage=storage, runs_dir=runs_dir or "runs")
    probe = optuna.load_study(study_name=study_name, storage=open_storage(url, settings))
    budget = probe.user_attrs.get("n_trials")
    if budget is None:
        raise ConfigError(f"study {study_name!r} records no n_trials; start it with r3dnas launch")
    spec = _spec_for_device(_spec_of(probe), device)
    datasets = check_data(spec)  # a missing file is one error now, not a failure per trial
    # NOTE: each worker gets its own sampler seed (the spec's + pid), or workers started
    # together would all propose the same first parameters.
    worker_spec = dataclasses.replace(
        spec, study=dataclasses.replace(spec.study, seed=spec.study.seed + os.getpid())
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=probe._storage,
        sampler=build_sampler(worker_spec),
        pruner=build_pruner(spec),
    )
    wandb_dir = Path(runs_dir or study.user_attrs.get("runs_dir", "runs"))
    tracker = _tracker(spec, study_name, wandb_mode, wandb_dir / study_name)
    runner = TrialRunner(spec, tracker=tracker, datasets=datasets)
    stopped = run_local(
        study, runner, n_trials=int(budget), timeout_s=spec.study.timeout_s, settings=settings,
        progress=progress, label=f"{study_name} worker {os.getpid()}",
    )  # fmt: skip
    tracker.close()
    completed = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    return WorkerResult(
        study_name=study_name, n_trials=int(budget), completed=completed, stopped=stopped
    )


def _settings(heartbeat_s: int | None, grace_s: int | None) -> Any:
    """Heartbeat settings from the CLI's ``--heartbeat`` / ``--grace`` (None: the default)."""
    from studies.storage import StorageSettings

    for flag, value in (("--heartbeat", heartbeat_s), ("--grace", grace_s)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive number of seconds; got {value}")
    defaults = StorageSettings()
    return StorageSettings(
        heartbeat_interval=heartbeat_s or defaults.heartbeat_interval,
        grace_period=grace_s or defaults.grace_period,
        max_retry=defaults.max_retry,
    )


def _devices(n_workers: int) -> list[str | None]:
    """One device per worker: GPUs round-robin when there are any, else the spec's own."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # pragma: no cover - torch without CUDA support
        count = 0
    if count == 0:
        return [None] * n_workers
    return [f"cuda:{i % count}" for i in range(n_workers)]


def spawn_workers(
    n_workers: int,
    *,
    study_name: str,
    storage_url: str,
    wandb_mode: str | None = None,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
) -> list[int]:
    """Start ``n_workers`` ``r3dnas worker`` processes on this machine and wait for them."""
    procs = []
    for device in _devices(n_workers):
        cmd = [sys.executable, "-m", "studies.cli", "worker", "--study", study_name,
               "--storage", storage_url, "--quiet"]  # fmt: skip
        if device is not None:
            cmd += ["--device", device]
        if wandb_mode is not None:
            cmd += ["--wandb", wandb_mode]
        if heartbeat_s is not None:
            cmd += ["--heartbeat", str(heartbeat_s)]
        if grace_s is not None:
            cmd += ["--grace", str(grace_s)]
        procs.append(subprocess.Popen(cmd))
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait())
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        raise
    return codes
