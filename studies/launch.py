"""Run or resume a study: the loop around :class:`~studies.objective.TrialRunner`.

Guarantees:

* **Exact budget.** ``n_trials`` counts completed trials (measured or reused), across every
  worker on the same storage: a worker starts a trial only while completed + running trials are
  below the budget, and a trial that loses a race to an earlier-numbered one stops before doing
  any work (recorded as ``over_budget``).
* **Nothing lost.** Each trial is written to the Optuna storage as it ends; a failed or
  infeasible trial keeps its reason (user attribute ``fail_reason``) and the study goes on.
* **Clean interrupts.** Ctrl-C or SIGTERM marks the running trial failed ("interrupted"), and
  the next ``launch`` of the same study re-runs that trial's parameters first.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from search_space.errors import ConfigError, TrialFailure

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

    from studies.spec import StudySpec

__all__ = ["LaunchResult", "StopReason", "build_sampler", "exit_status", "launch", "open_study"]

POLL_S = 1.0

# Why a trial loop ended: the budget is complete, the spec's timeout_s passed, it gave up after
# too many trials that did not complete, or Ctrl-C / SIGTERM.
StopReason = Literal["done", "timeout", "gave_up", "interrupted"]


def exit_status(stopped: StopReason, *, completed: int) -> int:
    """The exit code of a command that runs trials (the CLI's rule, stated in the README).

    0: the budget is complete, or the spec's ``timeout_s`` ended a study that has results;
    1: the run failed (it gave up short of the budget, or nothing completed); 130: interrupted.
    """
    if stopped == "interrupted":
        return 130
    if stopped == "done" or (stopped == "timeout" and completed > 0):
        return 0
    return 1


@dataclass(frozen=True, kw_only=True, slots=True)
class LaunchResult:
    study_name: str
    storage: str  # display form: no password
    n_trials: int
    completed: int
    failed: int
    infeasible: int
    stopped: StopReason
    wall_s: float
    worker_exit_codes: tuple[int, ...] = ()  # with workers > 1, one per worker process

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    @property
    def exit_code(self) -> int:
        """:func:`exit_status`, and 1 when a worker process failed."""
        code = exit_status(self.stopped, completed=self.completed)
        if code == 0 and any(c != 0 for c in self.worker_exit_codes):
            return 1
        return code


def build_sampler(spec: StudySpec) -> BaseSampler:
    """The spec's sampler with its seed (always explicit: Optuna 5 changed the defaults)."""
    import optuna

    study = spec.study
    if study.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=study.seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=study.n_startup_trials,
        )
    if study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=study.seed)
    if study.sampler == "gp":
        return optuna.samplers.GPSampler(seed=study.seed, n_startup_trials=study.n_startup_trials)
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.seed)
    if study.sampler == "grid":
        grid = {c.name: list(c.values) for c in spec.space.choices}
        return optuna.samplers.GridSampler(grid, seed=study.seed)
    raise ConfigError(f"[study] sampler {study.sampler!r} is not supported")  # pragma: no cover


def build_pruner(spec: StudySpec) -> BasePruner:
    """Optuna's median pruner when asked for (single-objective studies), else none."""
    import optuna

    if spec.study.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.study.n_startup_trials)
    return optuna.pruners.NopPruner()


def open_study(spec: StudySpec, *, study_name: str, storage_url: str, settings: Any = None) -> Any:
    """Create or load the study; a study with other objectives is an error, not a mix."""
    import optuna

    from studies.storage import display_url, open_storage

    storage = open_storage(storage_url, settings)
    directions = list(spec.directions)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,
        sampler=build_sampler(spec),
        pruner=build_pruner(spec),
        load_if_exists=True,
    )
    stored = [d.name.lower() for d in study.directions]
    if stored != [d for d in directions]:
        raise ConfigError(
            f"study {study_name!r} in {display_url(storage_url)} has directions {stored}, but the "
            f"spec asks for {directions}; use another --study name"
        )
    if "objectives" not in study.user_attrs:
        study.set_user_attr("objectives", list(spec.objective_names))
        study.set_user_attr("spec", _jsonable(spec.raw))
        study.set_user_attr("spec_source", spec.source)
    elif study.user_attrs["objectives"] != list(spec.objective_names):
        raise ConfigError(
            f"study {study_name!r} records objectives {study.user_attrs['objectives']}, the spec "
            f"asks for {list(spec.objective_names)}; use another --study name"
        )
    return study


def _jsonable(value: Any) -> Any:
    import json

    from studies.redact import redact

    return json.loads(json.dumps(redact(value), default=str))


def _counts(study: Any) -> tuple[int, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def _within_budget(study: Any, number: int, n_trials: int) -> bool:
    """Completed trials plus the running or waiting trials numbered before ``number`` leave
    room for it.

    Waiting trials count too: a retry enqueued by another worker's stale-trial check may not yet
    be visible to this worker's ``ask()``, which then creates a newer trial instead of taking the
    retry; the older retry keeps its claim on the budget.
    """
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    taken = sum(
        t.state == TrialState.COMPLETE or t.number < number
        for t in study.get_trials(deepcopy=False, states=states)
        if t.number != number
    )
    return taken < n_trials


def _requeue_interrupted(study: Any) -> int:
    """Enqueue the parameters of trials an interrupt cut short, once each."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("fail_reason", "").startswith("interrupted")
            and t.number not in retried
        ):
            attrs = {"retry_of": t.number}
            if "enqueued_config" in t.user_attrs:
                attrs["enqueued_config"] = t.user_attrs["enqueued_config"]
            study.enqueue_trial(t.params, user_attrs=attrs, skip_if_exists=False)
            count += 1
    return count


def _enqueue_presets(study: Any, names: tuple[str, ...]) -> None:
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


def reusable_finder(study: Any) -> Callable[[str, str], Any]:
    from optuna.trial import TrialState

    def find(digest: str, signature: str) -> Any:
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("digest") == digest and t.user_attrs.get("signature") == signature:
                return t
        return None

    return find


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the running trial is marked and the loop ends."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_objective(
    study: Any, runner: Any, *, n_trials: int, config_for: Callable[[Any], Any] | None = None
) -> Callable[[Any], tuple[float, ...]]:
    """The Optuna objective: budget check, enqueued configs, then the runner."""
    from search_space.config import ResNet3dConfig

    find = reusable_finder(study)

    def objective(trial: Any) -> tuple[float, ...]:
        if not _within_budget(study, trial.number, n_trials):
            trial.set_user_attr("state", "over_budget")
            trial.set_user_attr("fail_reason", "over_budget: other workers filled the budget")
            raise TrialFailure("over_budget")
        config = None
        enqueued = trial.user_attrs.get("enqueued_config")
        if enqueued:
            config = ResNet3dConfig.from_json(enqueued)
        elif config_for is not None:
            config = config_for(trial)
        seed = trial.user_attrs.get("train_seed")
        return runner.run(trial, config=config, seed=seed, find_reusable=find)

    return objective


def run_trials(
    study: Any,
    objective: Callable[[Any], Any],
    *,
    n_trials: int,
    timeout_s: float | None,
    progress: bool,
    label: str,
    reap: Callable[[], Any] | None = None,
    runner: Any = None,
) -> StopReason:
    """Run trials until ``n_trials`` are complete; returns why it stopped.

    Args:
        reap: called before each trial and while waiting, to fail trials of dead workers
            (default: Optuna's stale-trial check, which covers RDB storages).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if reap is None:
        from studies.storage import StorageSettings
        from studies.workers import reap_stale_trials

        grace = StorageSettings().grace_period

        def reap() -> Any:
            return reap_stale_trials(study, grace_s=grace)

    started = time.monotonic()
    complete, _ = _counts(study)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_trials, initial=min(complete, n_trials), desc=label, unit="trial")
        if runner is not None:
            runner.status = bar.set_postfix_str
    attempts = 0
    max_attempts = 5 * n_trials + 20  # NOTE: guards against a space that is all infeasible
    try:
        with _sigterm_as_interrupt():
            while True:
                reap()
                complete, running = _counts(study)
                if bar is not None:
                    bar.n = min(complete, n_trials)
                    bar.refresh()
                if complete >= n_trials:
                    return "done"
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    print(f"{label}: timeout after {timeout_s:g} s with {complete} complete")
                    return "timeout"
                if attempts >= max_attempts:
                    print(
                        f"{label}: stopping after {attempts} attempts with only {complete} "
                        "complete trials; see the failed trials' fail_reason"
                    )
                    return "gave_up"
                if complete + running >= n_trials:
                    # Others hold the rest of the budget: wait (reap() above frees the slot of
                    # a dead worker's trial).
                    time.sleep(POLL_S)
                    continue
                attempts += 1
                try:
                    study.optimize(objective, n_trials=1, catch=(TrialFailure,))
                except KeyboardInterrupt:
                    return "interrupted"
                except optuna.exceptions.UpdateFinishedTrialError as exc:
                    # Another worker declared this worker's trial stale (its heartbeat was late,
                    # e.g. on an overloaded machine) and re-enqueued it; the retry re-runs it.
                    print(f"{label}: {exc} (declared stale elsewhere; its retry re-runs it)")
    finally:
        if bar is not None:
            bar.close()
        if runner is not None:
            runner.status = None


def prepare_study(
    spec: StudySpec,
    *,
    study_name: str,
    storage_url: str,
    n_trials: int,
    runs_dir: str | Path = "runs",
    settings: Any = None,
) -> Any:
    """Create or resume a study ready for workers: budget recorded, interrupted trials and
    preset reference points enqueued. ``r3dnas worker`` processes can join it afterwards."""
    study = open_study(spec, study_name=study_name, storage_url=storage_url, settings=settings)
    study.set_user_attr("n_trials", n_trials)
    study.set_user_attr("runs_dir", str(runs_dir))
    _requeue_interrupted(study)
    _enqueue_presets(study, spec.study.enqueue_presets)
    return study


def run_local(
    study: Any,
    runner: Any,
    *,
    n_trials: int,
    timeout_s: float | None,
    settings: Any,
    progress: bool,
    label: str,
) -> StopReason:
    """Run trials in this process with heartbeats and stale-trial reaping; why it stopped."""
    from studies.workers import reap_stale_trials, with_journal_heartbeat

    objective = with_journal_heartbeat(
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
    )


def check_data(spec: StudySpec) -> tuple[Any, Any]:
    """The spec's ``(train, val)`` datasets, built before any study or trial exists.

    Why: every trial trains on them, so a missing list or file, a bad label or an empty list is
    one clear error at the start, not a failure recorded on trial after trial (each of which
    may first spend minutes measuring latency).
    """
    from runners.data import build_datasets

    return build_datasets(spec.data)


def launch(
    spec: Any = None,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    wandb_mode: str | None = None,
    progress: bool = True,
    runs_dir: str | Path = "runs",
    print_pareto: bool = True,
    workers: int = 1,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
) -> LaunchResult:
    """Run or resume a study (``r3dnas launch``).

    Args:
        spec: a :class:`~studies.spec.StudySpec`, a shipped spec name or a TOML path
            (default: the CPU default study).
        study_name: overrides ``[study] name``.
        storage: an Optuna storage URL (default ``$R3DNAS_STORAGE`` or ``runs/<study>.db``).
        n_trials: overrides ``[study] n_trials`` (the number of completed trials wanted).
        wandb_mode: ``offline`` (default), ``online`` or ``disabled``; overrides ``[wandb]``.
        workers: run this many worker processes on this machine (one per GPU where there are
            GPUs) instead of running trials in this process.
        heartbeat_s, grace_s: heartbeat interval and stale-trial grace period (RDB storages).
    """
    import optuna
    from optuna.trial import TrialState

    from studies.objective import TrialRunner
    from studies.spec import StudySpec, load_spec
    from studies.storage import display_url, resolve_storage_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    if not isinstance(spec, StudySpec):
        spec = load_spec(spec)
    name = study_name or spec.study.name
    url = resolve_storage_url(storage, study_name=name, runs_dir=runs_dir)
    budget = n_trials if n_trials is not None else spec.study.n_trials
    if budget < 1:
        raise ConfigError(f"--n-trials must be a positive int; got {budget}")
    if workers < 1:
        raise ConfigError(f"--workers must be a positive int; got {workers}")
    from studies.workers import _settings, spawn_workers

    settings = _settings(heartbeat_s, grace_s)
    datasets = check_data(spec)
    study = prepare_study(
        spec, study_name=name, storage_url=url, n_trials=budget, runs_dir=runs_dir,
        settings=settings,
    )  # fmt: skip
    tracker = _tracker(spec, name, wandb_mode, Path(runs_dir) / name)
    print(f"study {name!r} on {display_url(url)}: {budget} trials of {spec.source}")
    codes: tuple[int, ...] = ()
    stopped: StopReason
    if workers > 1:
        try:
            codes = tuple(spawn_workers(
                workers, study_name=name, storage_url=url, wandb_mode=wandb_mode,
                heartbeat_s=heartbeat_s, grace_s=grace_s,
            ))  # fmt: skip
            stopped = "done" if _counts(study)[0] >= budget else "gave_up"
        except KeyboardInterrupt:
            stopped = "interrupted"
    else:
        runner = TrialRunner(spec, tracker=tracker, datasets=datasets)
        stopped = run_local(
            study, runner, n_trials=budget, timeout_s=spec.study.timeout_s, settings=settings,
            progress=progress, label=name,
        )  # fmt: skip
    trials = study.get_trials(deepcopy=False)
    states = [t.user_attrs.get("state") for t in trials]
    result = LaunchResult(
        study_name=name,
        storage=display_url(url),
        n_trials=budget,
        completed=sum(t.state == TrialState.COMPLETE for t in trials),
        failed=sum(s in ("failed",) for s in states),
        infeasible=sum(s == "infeasible" for s in states),
        stopped=stopped,
        wall_s=time.perf_counter() - t0,
        worker_exit_codes=codes,
    )
    if any(codes):
        print(f"worker exit codes: {', '.join(map(str, codes))} (non-zero: that worker failed)")
    if result.interrupted:
        print(f"interrupted: run the same command again to resume study {name!r}")
    if print_pareto:
        from studies.pareto import format_pareto, pareto

        front = pareto(study)
        print(format_pareto(front, fmt="table"))
        tracker.log_study(front.to_dict(orient="records"), summary=_summary(result))
    tracker.close()
    return result


def _summary(result: LaunchResult) -> dict[str, Any]:
    return {
        "completed": result.completed,
        "failed": result.failed,
        "infeasible": result.infeasible,
        "wall_s": result.wall_s,
    }


def _tracker(spec: Any, study_name: str, mode: str | None, run_dir: Path) -> Any:
    from studies.tracking import StudyTracker, TrackingConfig

    settings = dict(spec.wandb)
    if mode is not None:
        settings["mode"] = mode
    cfg = TrackingConfig(dir=str(run_dir), **settings)
    return StudyTracker(cfg, study_name=study_name)
