"""The budget of a study: which trials count as trainings, and whether one more fits.

``n_trials`` counts networks measured (:func:`is_counted`), not Optuna trials: a reused
proposal is free, an enqueued grid point counts, and the retries of one failed trial count
once (:func:`count_counted`). Every process of a study (the launcher, local workers,
``r3dnas worker`` on other machines) decides with these rules, so they agree on when it is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "count_counted",
    "count_trials",
    "duplicate_retry_of",
    "first_attempts",
    "is_completed",
    "is_counted",
    "retry_origin",
    "was_cut_short",
    "within_budget",
]


def is_completed(trial: FrozenTrial) -> bool:
    """Whether ``trial`` has results: COMPLETE, or a reused trial (recorded PRUNED so that
    Optuna and optuna-dashboard see each network once; its ``state`` attribute is ``reused``
    and its metrics are those of the trial it reused)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.PRUNED and trial.user_attrs.get("state") == "reused"
    )


def is_counted(trial: FrozenTrial) -> bool:
    """Whether ``trial`` counts toward ``n_trials``, a budget of trainings.

    A COMPLETE trial (a network measured) counts. A reused one counts only when it was
    enqueued (``enqueued_config``: a grid point x seed, a preset, a confirmation seed): it was
    asked for by name, so a grid is run exactly; a reuse the sampler proposed costs nothing and
    does not count. A confirmation seed that failed for good (not interrupted, not stale: those
    are retried) counts too, so that the queue of confirmations ends.
    """
    from optuna.trial import TrialState

    attrs = trial.user_attrs
    if trial.state == TrialState.FAIL:
        reason = str(attrs.get("fail_reason", ""))
        retried = was_cut_short(trial) or reason.startswith(("stale", "duplicate"))
        return "confirm_of" in attrs and not retried
    return is_completed(trial) and (
        trial.state == TrialState.COMPLETE or "enqueued_config" in attrs
    )


def was_cut_short(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because its process was stopped, so it must run again.

    Ctrl-C or SIGTERM records the reason "interrupted". A signal that lands inside a storage
    write (PostgreSQL: in the middle of psycopg's exchange) can leave the trial FAIL with no
    reason at all: Optuna failed it, and the reason could not be written. r3dnas records a
    reason for every failure of its own, so a FAIL trial without one was cut short too.
    """
    from optuna.trial import TrialState

    reason = trial.user_attrs.get("fail_reason")
    return trial.state == TrialState.FAIL and (
        reason is None or str(reason).startswith("interrupted")
    )


def retry_origin(trial: FrozenTrial) -> int | None:
    """The failed trial that ``trial`` retries, or None for a first attempt.

    Two paths retry a trial cut short: a restart's :func:`requeue_interrupted` (user attribute
    ``retry_of``) and a live worker's stale-trial reaper (system attribute ``failed_trial``,
    :mod:`studies.run.heartbeat`). A worker killed mid-trial can be caught by both at once.
    """
    origin = trial.user_attrs.get("retry_of", trial.system_attrs.get("failed_trial"))
    return None if origin is None else int(origin)


def first_attempts(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """``trial number -> number of the first attempt it retries`` (retries of retries too)."""
    direct = {t.number: origin for t in trials if (origin := retry_origin(t)) is not None}
    first: dict[int, int] = {}
    for number in direct:
        root, seen = number, set()
        while root in direct and root not in seen:
            seen.add(root)
            root = direct[root]
        first[number] = root
    return first


def count_counted(trials: Sequence[FrozenTrial]) -> int:
    """How many of ``trials`` count toward the budget: each :func:`is_counted` trial, except
    that the retries of one failed trial count once, however many paths retried it.

    Why: when a restart's requeue and a worker's reaper both retried one killed trial, both
    retries ran and counted, so a resumed grid ended one point short (issue 23's build lost
    a row that way).
    """
    first = first_attempts(trials)
    retried: set[int] = set()
    count = 0
    for t in trials:
        if not is_counted(t):
            continue
        if t.number in first:
            if first[t.number] in retried:
                continue
            retried.add(first[t.number])
        count += 1
    return count


def duplicate_retry_of(study: optuna.Study, number: int) -> int | None:
    """The other trial that already retries what trial ``number`` retries (it ran, runs or
    waits ahead in the queue), or None: then ``number`` is the one retry that trains."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    first = first_attempts(trials)
    if number not in first:
        return None
    for t in trials:
        if t.number == number or first.get(t.number) != first[number]:
            continue
        ahead = t.state in (TrialState.WAITING, TrialState.RUNNING) and t.number < number
        if is_counted(t) or ahead:
            return t.number
    return None


_FINISHED_OR_RUNNING = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """``(counted, running)`` trials of the study (counted: :func:`is_counted`)."""
    from optuna.trial import TrialState

    states = tuple(TrialState[s] for s in _FINISHED_OR_RUNNING)
    trials = study.get_trials(deepcopy=False, states=states)
    complete = count_counted(trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return complete, running


def within_budget(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Completed trials plus the running or waiting trials numbered before ``number`` leave
    room for it.

    Waiting trials count too: a retry enqueued by another worker's stale-trial check may not yet
    be visible to this worker's ``ask()``, which then creates a newer trial instead of taking the
    retry; the older retry keeps its claim on the budget.
    """
    from optuna.trial import TrialState

    waiting = (TrialState.RUNNING, TrialState.WAITING)
    others = [t for t in study.get_trials(deepcopy=False) if t.number != number]
    ahead = sum(not is_counted(t) and t.state in waiting and t.number < number for t in others)
    return count_counted(others) + ahead < n_trials
