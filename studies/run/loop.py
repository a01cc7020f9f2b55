"""The run loop every trial goes through: budget, objective, requeue, signals.

``launch``, ``ablate`` and ``r3dnas worker`` all run trials through :func:`run_local` (and
start local worker processes with :func:`spawn_workers`); what a trial *measures* is the
:class:`~studies.run.objective.TrialRunner`'s business, not this module's.

Guarantees:

* **Exact budget of trainings.** ``n_trials`` counts networks measured
  (:func:`studies.run.budget.is_counted`),
  across every worker on the same storage: a worker starts a trial only while counted + running
  trials are below the budget, and a trial that loses a race to an earlier-numbered one stops
  before doing any work (recorded as ``over_budget``). A trial whose sampler proposed a network
  already measured is reused (PRUNED in Optuna's terms, so optuna-dashboard shows each network
  once): it costs nothing, does not count, and the sampler is asked again. An enqueued trial (a
  grid point x seed of an ablation or table, a preset, a confirmation seed) counts when it ends
  with results, reused or not, so a grid is run exactly.
* **No endless asking.** After :data:`REUSE_STREAK` proposals in a row of networks already
  measured (reused, or stopped again by a pruner before training: neither trains anything) the
  loop stops with one line (:data:`STUCK_LINE`; stop reason ``stuck``, exit code 3): the sampler
  proposes only networks already measured (it is stuck, or the space is exhausted).
* **Nothing lost.** Each trial is written to the Optuna storage as it ends; a failed or
  infeasible trial keeps its reason (user attribute ``fail_reason``) and the study goes on.
* **Clean interrupts.** Ctrl-C or SIGTERM marks the running trial failed ("interrupted"), and
  the next ``launch`` of the same study re-runs that trial's parameters first. A signal between
  trials (Optuna asking or telling, a worker waiting) stops the loop at its next step instead:
  no trial is left RUNNING with nobody to run it, and no finished result is lost.
* **Crash safety.** A trial whose worker dies is failed after a grace period and retried once
  with the same parameters (:mod:`studies.run.heartbeat`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from search_space.errors import ConfigError, TrialFailure
from studies.run.budget import (
    count_trials,
    duplicate_retry_of,
    retry_origin,
    was_cut_short,
    within_budget,
)
from studies.run.interrupts import (
    interrupt_requested,
    interruptible,
    interrupts_as_keyboard_interrupt,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    from torch.utils.data import Dataset

    from search_space.config import ResNet3dConfig
    from studies.run.objective import TrialRunner
    from studies.run.worker_args import WorkerArgs
    from studies.study.sections import StudySpec
    from studies.study.storage import StorageSettings

__all__ = [
    "StopReason",
    "check_data",
    "enqueue_presets",
    "exit_status",
    "make_objective",
    "quiet_optuna",
    "requeue_interrupted",
    "run_local",
    "run_trials",
    "spawn_workers",
]

POLL_S = 1.0
INTERRUPTED_BEFORE_START = "interrupted (Ctrl-C / SIGTERM) before the trial started"
WATCH_S = 5.0  # how often a process waiting for its local workers shows the study's progress
# Trial states that get one line (their ``about``) instead of Optuna's traceback.
QUIET_STATES = ("infeasible", "failed", "pruned", "duplicate")
# Reused trials in a row after which the loop stops: the sampler proposes only networks the
# study has already measured (a stuck sampler, or a space exhausted).
REUSE_STREAK = 10
STUCK_LINE = (
    "{label}: stopped: the last {streak} trials proposed networks already measured (nothing "
    "trained; {complete} of {n_trials} networks trained): the {sampler} is stuck or the space "
    "is exhausted (exit code 3)"
)

# Why a trial loop ended: the budget is complete, the spec's timeout_s passed, it gave up after
# too many trials that did not complete, the sampler proposed only measured networks
# (REUSE_STREAK in a row), or Ctrl-C / SIGTERM.
StopReason = Literal["done", "timeout", "gave_up", "stuck", "interrupted"]
Objective = Callable[["optuna.Trial"], tuple[float, ...]]


def exit_status(stopped: StopReason, *, completed: int) -> int:
    """The exit code of a command that runs trials (the CLI's rule, stated in the README).

    0: the budget is complete, or the spec's ``timeout_s`` ended a study that has results;
    1: the run failed (it gave up short of the budget, or nothing completed); 3: stopped short
    of the budget because the sampler proposed only networks already measured (``stuck``);
    130: interrupted.
    """
    if stopped == "interrupted":
        return 130
    if stopped == "stuck":
        return 3
    if stopped == "done" or (stopped == "timeout" and completed > 0):
        return 0
    return 1


def check_data(spec: StudySpec) -> tuple[Dataset, Dataset]:
    """The spec's ``(train, val)`` datasets, built before any study or trial exists.

    Why: every trial trains on them, so a missing list or file, a bad label or an empty list is
    one clear error at the start, not a failure recorded on trial after trial (each of which
    may first spend minutes measuring latency). A tabular spec's table is read here too, so a
    malformed table is an error before the study exists. So are the devices it trains and
    measures on: ``cuda`` on a machine without CUDA failed every trial, one by one.
    """
    from runners import resolve_device
    from runners.data.datasets import build_datasets

    if spec.study.table is not None:
        from runners.scores.tabular import load_table

        load_table(spec.study.table)  # NOTE: a tabular trial trains and times nothing here
    else:
        from runners.training.loop import resolve_flag

        for section, device in (("train", spec.train.device), ("measure", spec.measure.device)):
            try:
                resolved = resolve_device(device)
                if section == "train":  # NOTE: amp on a CPU failed every trial, one by one
                    resolve_flag("amp", spec.train.amp, resolved)
            except ConfigError as exc:
                raise ConfigError(f"[{section}] {exc}") from None
    return build_datasets(spec.data)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs warnings only inside the block; the caller's log level is restored after."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


# ---------------------------------------------------------------------- queue
# The user attributes a trial is enqueued with; a retry carries them over.
ENQUEUED_ATTRS = (
    "enqueued_config", "enqueued_preset", "factors", "train_seed", "confirm_of",
)  # fmt: skip


def requeue_interrupted(study: optuna.Study) -> int:
    """Enqueue the parameters of trials an interrupt cut short, once each, with what they were
    enqueued with (a configuration, an ablation's grid point and seed, a preset's name), so an
    ablation's point is run again instead of being lost."""

    trials = study.get_trials(deepcopy=False)
    retried = {retry_origin(t) for t in trials}
    count = 0
    for t in trials:
        if was_cut_short(t) and t.number not in retried:
            attrs = {"retry_of": t.number}
            attrs.update({k: t.user_attrs[k] for k in ENQUEUED_ATTRS if k in t.user_attrs})
            study.enqueue_trial(t.params, user_attrs=attrs, skip_if_exists=False)
            count += 1
    return count


def enqueue_presets(study: optuna.Study, names: tuple[str, ...]) -> None:
    """Reference points: each preset is evaluated once per study, as its own trial."""
    from search_space.canonical import canonicalize
    from search_space.presets import preset

    seen = {t.user_attrs.get("enqueued_preset") for t in study.get_trials(deepcopy=False)}
    for name in names:
        if name in seen:
            continue
        config = canonicalize(preset(name))
        study.enqueue_trial(
            {}, user_attrs={"enqueued_preset": name, "enqueued_config": config.to_json()}
        )


def _reusable_finder(study: optuna.Study) -> Callable[[str, str], FrozenTrial | None]:
    """``(digest, signature) ->`` an earlier trial of the same network and training: a
    complete one (reused), else the latest one a pruner stopped with a curve (judged again on
    that curve before training, see :func:`studies.run.pruning.stop_again`), else None."""
    from optuna.trial import TrialState

    def find(digest: str, signature: str) -> FrozenTrial | None:
        stopped = None
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        for t in study.get_trials(deepcopy=False, states=states):
            attrs = t.user_attrs
            if attrs.get("digest") != digest or attrs.get("signature") != signature:
                continue
            if t.state == TrialState.COMPLETE:
                return t
            if attrs.get("state") == "pruned" and attrs.get("history"):
                stopped = t
        return stopped

    return find


def make_objective(
    study: optuna.Study,
    runner: TrialRunner,
    *,
    n_trials: int,
    config_for: Callable[[optuna.Trial], ResNet3dConfig] | None = None,
) -> Objective:
    """The Optuna objective: budget check, enqueued configs, then the runner."""
    from search_space.config import ResNet3dConfig

    find = _reusable_finder(study)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        if not within_budget(study, trial.number, n_trials):
            trial.set_user_attr("about", "over budget: other workers filled it")
            trial.set_user_attr("state", "over_budget")
            trial.set_user_attr("fail_reason", "over_budget: other workers filled the budget")
            raise TrialFailure("over_budget")
        if (other := duplicate_retry_of(study, trial.number)) is not None:
            reason = f"duplicate: trial {other} already retries the same failed trial"
            trial.set_user_attr("about", reason)
            trial.set_user_attr("state", "duplicate")
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailure("duplicate")
        config = None
        enqueued = trial.user_attrs.get("enqueued_config")
        if enqueued:
            config = ResNet3dConfig.from_json(enqueued)
        elif config_for is not None:
            config = config_for(trial)
        seed = trial.user_attrs.get("train_seed")
        values = runner.run(trial, config=config, seed=seed, find_reusable=find)
        if "confirm_of" in trial.user_attrs:
            from studies.results.frames import describe_confirmation

            trial.set_user_attr("about", describe_confirmation(study, trial, values))
        return values

    return objective


# ---------------------------------------------------------------------- the loop
def run_trials(
    study: optuna.Study,
    objective: Objective,
    *,
    n_trials: int,
    timeout_s: float | None,
    progress: bool,
    label: str,
    reap: Callable[[], object] | None = None,
    runner: TrialRunner | None = None,
    stall_s: float | None = None,
) -> StopReason:
    """Run trials until ``n_trials`` are complete; returns why it stopped.

    Args:
        reap: called before each trial and while waiting, to fail trials of dead workers
            (default: the stale-trial check with the default grace period).
        runner: shows its one-line status on the progress bar.
        stall_s: while waiting for other workers' trials, give up ("gave_up") when nothing in
            the study has changed for this long (default: :func:`stall_limit` of the default
            grace period). A storage file that is gone also ends the loop.
    """
    from studies.study.storage import StorageSettings

    grace = StorageSettings().grace_period
    if reap is None:

        def reap() -> list[int]:
            from studies.run.heartbeat import reap_stale_trials

            return reap_stale_trials(study, grace_s=grace)

    bar = None
    if progress:
        from tqdm import tqdm

        complete, _ = count_trials(study)
        bar = tqdm(total=n_trials, initial=min(complete, n_trials), desc=label, unit="trial")
        if runner is not None:
            runner.status = bar.set_postfix_str
    try:
        from studies.run.trial_log import trial_warnings_to_file

        # NOTE: deferred: a signal raises only inside a trial's objective, never inside
        # Optuna's ask or tell (see studies.run.interrupts)
        with quiet_optuna(), interrupts_as_keyboard_interrupt(deferred=True):
            stall = stall_limit(grace) if stall_s is None else stall_s
            with trial_warnings_to_file(study) as log:
                return _loop(study, objective, n_trials, timeout_s, label, reap, bar, stall, log)
    finally:
        if bar is not None:
            bar.close()
        if runner is not None:
            runner.status = None


def _loop(
    study: optuna.Study,
    objective: Objective,
    n_trials: int,
    timeout_s: float | None,
    label: str,
    reap: Callable[[], object],
    bar: object | None,
    stall_s: float,
    log: Path | None = None,
) -> StopReason:
    """One trial at a time while the budget has room; see :func:`run_trials`."""
    import optuna

    from studies.run.heartbeat import Stall, storage_file

    started = time.monotonic()
    path = storage_file(study)
    stall = Stall()
    attempts = 0
    current: list[optuna.Trial] = []  # the trial the last optimize() ran

    def tracked(trial: optuna.Trial) -> tuple[float, ...]:
        current.append(trial)
        entered = False
        try:
            with interruptible():  # a signal that came while Optuna asked raises here
                entered = True
                return objective(trial)
        except KeyboardInterrupt:
            if not entered:
                trial.set_user_attr("fail_reason", INTERRUPTED_BEFORE_START)
            raise
        except (TrialFailure, optuna.TrialPruned):
            raise
        except Exception as exc:
            # NOTE: any other error of the objective (Optuna's own ValueError from a sampler,
            # a bug) is a failed trial with its reason, and the study goes on. It used to be
            # taken for a trial reaped by another worker ("declared stale elsewhere").
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("state", "failed")
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("about", f"failed: {reason}")
            raise TrialFailure(reason) from exc

    # NOTE: guards against a space that is all infeasible or failing; reuses are not attempts
    # (they cost nothing), the reuse streak bounds them.
    max_attempts = 5 * n_trials + 20
    reused_in_a_row = 0
    while True:
        if interrupt_requested():  # deferred: it came between trials
            return "interrupted"
        if path is not None and not path.exists():
            print(f"{label}: the study's storage file {path} is gone; stopping", file=sys.stderr)
            return "gave_up"
        reap()
        complete, running = count_trials(study)
        if bar is not None:
            bar.n = min(complete, n_trials)  # type: ignore[attr-defined]
            bar.refresh()  # type: ignore[attr-defined]
        if complete >= n_trials:
            return "done"
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            print(f"{label}: timeout after {timeout_s:g} s with {complete} of {n_trials} trained")
            return "timeout"
        if attempts >= max_attempts:
            print(
                f"{label}: stopping after {attempts} trials that neither trained nor reused a "
                f"network, with {complete} of {n_trials} trained; see their fail_reason"
            )
            return "gave_up"
        if complete + running >= n_trials:
            # Others hold the rest of the budget: wait (reap() above frees the slot of a dead
            # worker's trial).
            still = stall.still_for(study)
            if still >= stall_s:
                print(f"{label}: nothing in the study changed for {still:.0f} s while waiting "
                      f"for {running} running trial(s) of other workers (no heartbeat, epoch "
                      "or result); stopping", file=sys.stderr)  # fmt: skip
                return "gave_up"
            time.sleep(POLL_S)
            continue
        stall.reset()
        current.clear()
        try:
            study.optimize(tracked, n_trials=1, catch=(TrialFailure,))
        except KeyboardInterrupt:
            return "interrupted"
        except Exception as exc:
            # Another worker may have declared this worker's trial stale (its heartbeat was
            # late, e.g. on an overloaded machine) and re-enqueued it. Optuna then fails to
            # tell the result, in one of several ways (UpdateFinishedTrialError, "Cannot tell a
            # FAIL trial", an internal assertion): what counts is the trial's state in storage.
            if not (current and _finished_elsewhere(current[0])):
                raise
            print(f"{label}: trial {current[0].number} was declared stale elsewhere ({exc!r}); "
                  "its retry re-runs it")  # fmt: skip
        log = _say_why_not_complete(current, label, bar, log)
        if interrupt_requested():  # a library swallowed it: stop after this trial anyway
            return "interrupted"
        again = _proposed_again(current)
        attempts += 0 if again or _was_reused(current) else 1
        reused_in_a_row = reused_in_a_row + 1 if again else 0
        if reused_in_a_row >= REUSE_STREAK:
            complete, _ = count_trials(study)
            print(STUCK_LINE.format(label=label, streak=REUSE_STREAK, complete=complete,
                                    n_trials=n_trials, sampler=_sampler_name(study)))  # fmt: skip
            return "stuck"


def _say_why_not_complete(
    current: list[optuna.Trial], label: str, bar: object | None, log: Path | None
) -> Path | None:
    """One line for a trial that did not complete (its ``about``: why), the first one naming
    the log file that holds the tracebacks; returns the log path still to be named."""
    if not current or current[0].user_attrs.get("state") not in QUIET_STATES:
        return log
    trial = current[0]
    line = f"{label}: trial {trial.number} {trial.user_attrs.get('about', '')}"
    if log is not None:
        line += f" (tracebacks: {log})"
    if bar is not None:
        bar.write(line)  # type: ignore[attr-defined]
    else:
        print(line)
    return None


def _sampler_name(study: optuna.Study) -> str:
    """The sampler's class name (the inner one's, through a wrapper with ``inner``)."""
    sampler = study.sampler
    inner = getattr(sampler, "inner", None)
    if inner is not None:
        return f"{type(inner).__name__} (in {type(sampler).__name__})"
    return type(sampler).__name__


def _was_reused(current: list[optuna.Trial]) -> bool:
    """Whether the trial the last ``optimize()`` ran was a reuse (see :func:`is_completed`)."""
    return bool(current) and current[0].user_attrs.get("state") == "reused"


def _proposed_again(current: list[optuna.Trial]) -> bool:
    """Whether the trial the last ``optimize()`` ran was the sampler's proposal of a network
    already measured: reused, or a network a pruner stopped, stopped again before training
    (``stopped_from``). Both cost nothing; an enqueued trial was asked for by name."""
    if not current:
        return False
    attrs = current[0].user_attrs
    again = attrs.get("state") == "reused" or "stopped_from" in attrs
    return again and "enqueued_config" not in attrs


def _finished_elsewhere(trial: optuna.Trial) -> bool:
    """Whether storage holds ``trial`` as finished (failed by another worker's reaper)."""
    storage = trial.storage
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    return storage.get_trial(trial_id).state.is_finished()


def run_local(
    study: optuna.Study,
    runner: TrialRunner,
    *,
    n_trials: int,
    timeout_s: float | None,
    settings: StorageSettings,
    progress: bool,
    label: str,
) -> StopReason:
    """Run trials in this process with heartbeats and stale-trial reaping; why it stopped."""
    from studies.run.heartbeat import reap_stale_trials, with_heartbeat

    objective = with_heartbeat(
        study, make_objective(study, runner, n_trials=n_trials), settings.heartbeat_interval
    )
    return run_trials(
        study,
        objective,
        n_trials=n_trials,
        timeout_s=timeout_s,
        progress=progress,
        label=label,
        reap=lambda: reap_stale_trials(study, grace_s=settings.grace_period),
        runner=runner,
        stall_s=settings.stall_s or stall_limit(settings.grace_period),
    )


def stall_limit(grace_s: float) -> float:
    """How long a waiting worker tolerates a study in which nothing changes: ten grace periods
    (a live trial beats every interval, a dead one is reaped after one grace period), at least
    a minute."""
    return max(60.0, 10.0 * grace_s)


# ---------------------------------------------------------------------- local worker processes
def _devices(n_workers: int) -> list[str | None]:
    """One device per worker: GPUs round-robin when there are any, else the spec's own."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return [None] * n_workers
    return [f"cuda:{i % count}" for i in range(n_workers)]


def spawn_workers(
    n_workers: int,
    *,
    args: WorkerArgs | None = None,
    study_name: str | None = None,
    storage_url: str | None = None,
    wandb_mode: str | None = None,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    watch: Callable[[], None] | None = None,
) -> list[int]:
    """Start ``n_workers`` ``r3dnas worker`` processes on this machine and wait for them.

    ``args`` is their command line (:class:`~studies.run.worker_args.WorkerArgs`); the keyword
    arguments build one when it is not given. Each worker gets its own GPU where there are
    GPUs, and runs quietly (their progress bars would interleave); ``watch``, called every
    few seconds while they run, is where this process shows the study's progress instead.
    """
    from studies.run.worker_args import WorkerArgs

    if args is None:
        args = WorkerArgs(
            study_name=study_name, storage=storage_url, wandb_mode=wandb_mode,
            heartbeat_s=heartbeat_s, grace_s=grace_s,
        )  # fmt: skip
    procs = []
    for device in _devices(n_workers):
        one = dataclasses.replace(args, device=device or args.device, quiet=True)
        procs.append(subprocess.Popen(one.command()))
    codes = []
    try:
        for proc in procs:
            while True:
                try:
                    codes.append(proc.wait(timeout=WATCH_S if watch is not None else None))
                    break
                except subprocess.TimeoutExpired:  # only with a watch: its timeout
                    if watch is not None:
                        watch()
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        raise
    return codes
