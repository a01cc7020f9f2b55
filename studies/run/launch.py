"""Run or resume a study: ``r3dnas launch``.

The study is opened (:func:`studies.study.storage.open_study`), its budget recorded, interrupted
trials and preset reference points enqueued (:func:`prepare_study`), and its trials run in this
process or in local worker processes through the run loop (:mod:`studies.run.loop`), whose
guarantees (exact budget, nothing lost, clean interrupts) hold here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_space.errors import ConfigError
from studies.core.defaults import RUNS_DIR
from studies.run.loop import StopReason, exit_status
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna

    from studies.run.run_study import RunOutcome
    from studies.study.sections import StudySpec
    from studies.study.storage import StorageSettings
    from studies.tracking.tracker import StudyTracker

__all__ = ["LaunchResult", "launch", "prepare_study"]


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
        """:func:`~studies.run.loop.exit_status`, and 1 when a worker process failed."""
        code = exit_status(self.stopped, completed=self.completed)
        if code == 0 and any(c != 0 for c in self.worker_exit_codes):
            return 1
        return code


def prepare_study(
    spec: StudySpec,
    *,
    study_name: str,
    storage_url: str,
    n_trials: int,
    runs_dir: str | Path = RUNS_DIR,
    settings: StorageSettings | None = None,
) -> optuna.Study:
    """Create or resume a study ready for workers: budget recorded, interrupted trials and
    preset reference points enqueued. ``r3dnas worker`` processes can join it afterwards."""
    from studies.run.loop import enqueue_presets, requeue_interrupted
    from studies.study.storage import open_study

    study = open_study(spec, study_name=study_name, storage_url=storage_url, settings=settings)
    StudyRecord(study).record_budget(n_trials=n_trials, runs_dir=runs_dir)
    requeue_interrupted(study)
    enqueue_presets(study, spec.study.enqueue_presets)
    return study


def launch(
    spec: StudySpec | str | Path | None = None,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    wandb_mode: str | None = None,
    progress: bool = True,
    runs_dir: str | Path = RUNS_DIR,
    print_pareto: bool = True,
    workers: int = 1,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
) -> LaunchResult:
    """Run or resume a study (``r3dnas launch``).

    Args:
        spec: a :class:`~studies.study.sections.StudySpec`, a shipped spec name or a TOML path
            (default: the CPU default study).
        study_name: overrides ``[study] name``.
        storage: an Optuna storage URL (default ``$R3DNAS_STORAGE`` or ``runs/<study>.db``).
        n_trials: overrides ``[study] n_trials`` (the number of networks to train).
        wandb_mode: ``offline`` (default), ``online`` or ``disabled``; overrides ``[wandb]``.
        workers: run this many worker processes on this machine (one per GPU where there are
            GPUs) instead of running trials in this process.
        heartbeat_s, grace_s: heartbeat interval and stale-trial grace period (RDB storages).
    """
    from studies.run.loop import check_data, quiet_optuna
    from studies.run.run_study import run_study
    from studies.run.worker_args import WorkerArgs
    from studies.study.sections import StudySpec
    from studies.study.spec import load_spec
    from studies.study.storage import display_url, resolve_storage_url, storage_settings
    from studies.tracking.tracker import open_tracker

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
    settings = storage_settings(heartbeat_s, grace_s)
    datasets = check_data(spec)
    with quiet_optuna():
        study = prepare_study(
            spec, study_name=name, storage_url=url, n_trials=budget, runs_dir=runs_dir,
            settings=settings,
        )  # fmt: skip
        tracker = open_tracker(spec.wandb, study_name=name, mode=wandb_mode,
                               run_dir=Path(runs_dir) / name)  # fmt: skip
        print(f"study {name!r} on {display_url(url)}: {budget} trials of {spec.source}")
        args = WorkerArgs(study_name=name, storage=url, wandb_mode=wandb_mode,
                          heartbeat_s=heartbeat_s, grace_s=grace_s)  # fmt: skip

        def run(n: int) -> RunOutcome:
            """Run trials until ``n`` count toward the budget (studies.run.budget.is_counted)."""
            return run_study(
                study, spec, n_trials=n, tracker=tracker, datasets=datasets, settings=settings,
                progress=progress, label=name, workers=workers, worker_args=args,
            )  # fmt: skip

        outcome = run(budget)
        if spec.study.confirm_seeds and outcome.stopped in ("done", "stuck"):
            from studies.run.confirm import confirm_networks

            outcome = confirm_networks(study, spec, n_trials=budget, run=run, searched=outcome)
        result = _result(study, url, budget, outcome, wall_s=time.perf_counter() - t0)
        _report(result, study, tracker, print_pareto=print_pareto)
    return result


def _result(
    study: optuna.Study,
    url: str,
    budget: int,
    outcome: RunOutcome,
    *,
    wall_s: float,
) -> LaunchResult:
    from studies.run.budget import count_counted
    from studies.study.storage import display_url

    trials = study.get_trials(deepcopy=False)
    states = [t.user_attrs.get("state") for t in trials]
    return LaunchResult(
        study_name=study.study_name,
        storage=display_url(url),
        n_trials=budget,
        completed=count_counted(trials),
        failed=sum(s == "failed" for s in states),
        infeasible=sum(s == "infeasible" for s in states),
        stopped=outcome.stopped,
        wall_s=wall_s,
        worker_exit_codes=outcome.worker_exit_codes,
    )


def _report(
    result: LaunchResult, study: optuna.Study, tracker: StudyTracker, *, print_pareto: bool
) -> None:
    """Print how the run ended and the front; log the front to wandb; close the tracker."""
    codes = result.worker_exit_codes
    if any(codes):
        print(f"worker exit codes: {', '.join(map(str, codes))} (non-zero: that worker failed)")
    if result.interrupted:
        print(f"interrupted: run the same command again to resume study {result.study_name!r}")
    if print_pareto:
        from studies.results.pareto import format_pareto, pareto

        front = pareto(study)
        print(format_pareto(front, fmt="table"))
        summary = {
            "completed": result.completed,
            "failed": result.failed,
            "infeasible": result.infeasible,
            "wall_s": result.wall_s,
            "hypervolume": front.attrs["hypervolume"],
            "reference_point": dict(
                zip(front.attrs["objectives"], front.attrs["reference_point"], strict=True)
            ),
        }
        config = {
            "spec": StudyRecord(study).spec or {},
            "objectives": front.attrs["objectives"],
            "directions": front.attrs["directions"],
        }
        tracker.log_study(front.to_dict(orient="records"), summary=summary, config=config)
    tracker.close()
