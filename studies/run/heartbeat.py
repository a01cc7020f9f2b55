"""Crash safety: heartbeats of running trials, and reaping the trials of dead workers.

Every storage: each running trial gets a ``r3dnas:heartbeat`` system attribute (a timestamp,
written every ``heartbeat_interval`` seconds by a thread that survives a failed write), and
every worker reaps a running trial whose heartbeat it has *seen unchanged* for the grace
period: failed, and re-enqueued once with the same parameters (the retry's system attribute
``failed_trial`` names it). Only the worker whose state change succeeds re-enqueues.

Why "seen unchanged" and not "older than": a trial created by ``ask()`` has no heartbeat until
its thread first writes one, so a worker killed in between (or whose first write waits behind
other workers' SQLite transactions) leaves a running trial with no heartbeat at all. Optuna's
own check (``fail_stale_trials``, still run for RDB storages) skips such a trial forever, and
the study's other workers then wait forever for its slot in the budget (issue 20 item 9).
Counting silence on the reaper's own monotonic clock also makes the check independent of
clock differences between the machines of a PostgreSQL or journal study.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["HEARTBEAT_KEY", "reap_stale_trials", "with_heartbeat"]

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
def _heartbeat(trial: optuna.Trial, interval_s: float) -> Iterator[None]:
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


def with_heartbeat(study: optuna.Study, objective: Objective, interval_s: float) -> Objective:
    """``objective`` with a ``r3dnas:heartbeat`` thread beating while it runs (any storage)."""

    def beating(trial: optuna.Trial) -> tuple[float, ...]:
        with _heartbeat(trial, interval_s):
            return objective(trial)

    return beating


# (study name, trial number) -> (the heartbeat last seen, when it was first seen: monotonic s)
_seen: dict[tuple[str, int], tuple[object, float]] = {}


def _silence(study_name: str, running: list[FrozenTrial], now: float) -> dict[int, float]:
    """Seconds each running trial's heartbeat has been seen unchanged by this process."""
    numbers = {t.number for t in running}
    for key in [k for k in _seen if k[0] == study_name and k[1] not in numbers]:
        del _seen[key]  # finished: forget it
    silence = {}
    for t in running:
        beat = t.system_attrs.get(HEARTBEAT_KEY)
        last = _seen.get((study_name, t.number))
        if last is None or last[0] != beat:
            _seen[(study_name, t.number)] = last = (beat, now)
        silence[t.number] = now - last[1]
    return silence


def reap_stale_trials(study: optuna.Study, *, grace_s: float, max_retry: int = 2) -> list[int]:
    """Fail running trials whose heartbeat this process has seen unchanged (or absent) for
    ``grace_s`` seconds, and re-enqueue their parameters; returns the trial numbers failed.

    A process sees a trial's silence from its first call on, so a dead trial is reaped at the
    earliest ``grace_s`` after the first call that sees it (``grace_s = 0``: at once). RDB
    storages also run Optuna's check (``fail_stale_trials``), which retries the same way.
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
    storage = study_storage(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    silences = _silence(study.study_name, running, time.monotonic())
    reaped = []
    for t in running:
        silence = silences[t.number]
        if silence < grace_s:
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


# ---------------------------------------------------------------------- waiting on others
def storage_file(study: optuna.Study) -> Path | None:
    """The file of a SQLite or journal study (None for a server or an in-memory database).

    A worker checks it while it waits: a deleted file keeps answering through the open handle
    (SQLite) or the open path (journal), so without the check a worker would wait forever on a
    study nobody can reach any more.
    """
    from optuna.storages import JournalStorage, RDBStorage

    from studies.study.storage import study_storage

    storage = study_storage(study)
    inner = getattr(storage, "_backend", storage)  # NOTE: Optuna's cached-storage wrapper
    if isinstance(inner, RDBStorage):
        url = inner.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database)
        return None
    if isinstance(inner, JournalStorage):
        # NOTE: no public accessor for a journal backend's path.
        path = getattr(inner._backend, "_file_path", None)
        return None if path is None else Path(path)
    return None


class Stall:
    """Notices a study in which nothing happens while this worker waits for others' trials:
    no trial started, finished, beat or logged an epoch (the caller decides for how long).

    A live worker's trial beats every heartbeat interval and a dead one's is reaped after the
    grace period, so a study that stays still this long is one the reaper cannot act on (a
    storage that refuses writes, a trial stuck in a state nothing resolves): waiting longer
    cannot help.
    """

    def __init__(self) -> None:
        self._last: object = None
        self._since = time.monotonic()

    def still_for(self, study: optuna.Study) -> float:
        """Seconds since the study last changed (0 when it just did)."""
        state = [
            (
                t.number,
                t.state,
                t.system_attrs.get(HEARTBEAT_KEY),
                len(t.user_attrs.get("history") or []),
            )
            for t in study.get_trials(deepcopy=False)
        ]
        now = time.monotonic()
        if state != self._last:
            self._last, self._since = state, now
        return now - self._since

    def reset(self) -> None:
        self._last, self._since = None, time.monotonic()
