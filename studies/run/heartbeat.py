"""Crash safety: heartbeats of running trials, and reaping the trials of dead workers.

* RDB storages (SQLite, PostgreSQL): Optuna's heartbeats; a trial whose worker stops beating for
  the grace period is failed and re-enqueued with the same parameters
  (``RetryHeartbeatStaleTrialCallback``; the retry's system attribute ``failed_trial`` names it).
* Journal files, where Optuna has no heartbeat: ours. Each running trial gets a
  ``r3dnas:heartbeat`` timestamp every ``heartbeat_interval`` seconds, and every worker reaps
  running trials whose last beat is older than the grace period the same way. Only the worker
  whose state change succeeds re-enqueues, so a dead trial is retried once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["HEARTBEAT_KEY", "reap_stale_trials", "with_journal_heartbeat"]

_log = logging.getLogger(__name__)

HEARTBEAT_KEY = "r3dnas:heartbeat"
Objective = Callable[["optuna.Trial"], tuple[float, ...]]


def _is_journal(study: optuna.Study) -> bool:
    from optuna.storages import JournalStorage

    from studies.study.storage import study_storage

    storage = study_storage(study)
    inner = getattr(storage, "_backend", storage)  # NOTE: Optuna's cached-storage wrapper
    return isinstance(storage, JournalStorage) or isinstance(inner, JournalStorage)


@contextlib.contextmanager
def _journal_heartbeat(trial: optuna.Trial, interval_s: float) -> Iterator[None]:
    """Beat for ``trial`` from a daemon thread while the block runs."""
    from optuna.exceptions import UpdateFinishedTrialError

    storage = trial.storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(trial.study.study_name), trial.number
    )
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())
            except UpdateFinishedTrialError:
                return  # it finished, or another worker reaped it: nothing left to beat for
            except Exception as exc:  # NOTE: a missed beat must not end the trial; retry
                _log.warning("heartbeat of trial %d failed: %r", trial.number, exc)
            stop.wait(interval_s)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def with_journal_heartbeat(
    study: optuna.Study, objective: Objective, interval_s: float
) -> Objective:
    if not _is_journal(study):
        return objective

    def beating(trial: optuna.Trial) -> tuple[float, ...]:
        with _journal_heartbeat(trial, interval_s):
            return objective(trial)

    return beating


def reap_stale_trials(study: optuna.Study, *, grace_s: float, max_retry: int = 2) -> list[int]:
    """Fail running trials with no recent heartbeat and re-enqueue their parameters.

    RDB storages delegate to Optuna (``fail_stale_trials``); journal storages use our
    ``r3dnas:heartbeat`` attribute. Returns the trial numbers this call failed.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from studies.study.storage import study_storage

    if not _is_journal(study):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        except UpdateFinishedTrialError as exc:  # another worker failed or finished it first
            _log.debug("stale-trial check: %s", exc)
        except Exception as exc:  # NOTE: e.g. a locked database; the next poll checks again
            _log.warning("stale-trial check skipped: %r", exc)
        return []
    storage = study_storage(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = t.system_attrs.get(HEARTBEAT_KEY)
        if last is None:
            last = t.datetime_start.timestamp() if t.datetime_start else now
        silence = now - float(last)
        if silence <= grace_s:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            # NOTE: attributes first: a finished trial can no longer be updated. Only the worker
            # whose state change wins (the journal replays one) goes on to re-enqueue.
            storage.set_trial_user_attr(
                trial_id, "fail_reason", f"stale: no heartbeat for {silence:.0f} s"
            )
            storage.set_trial_user_attr(trial_id, "state", "failed")
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            _log.debug("trial %d finished before it could be reaped", t.number)
            continue
        reaped.append(t.number)
        history = list(t.system_attrs.get("retry_history", [])) + [t.number]
        if len(history) > max_retry:
            _log.warning("trial %d is stale again; not retried (retries: %s)", t.number, history)
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
