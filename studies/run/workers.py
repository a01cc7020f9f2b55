"""Many workers on one study: ``r3dnas worker`` (``launch --workers N`` starts them).

A worker loads an existing study, rebuilds its spec from the study's own record (so every
worker measures the same way) and runs trials until the study's budget of completed trials is
reached. Crash safety (heartbeats, stale trials retried once) is the run loop's:
:mod:`studies.run.loop`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_space.errors import ConfigError
from studies.core.defaults import RUNS_DIR
from studies.run.budget import count_counted
from studies.run.loop import StopReason, exit_status

if TYPE_CHECKING:
    from studies.run.worker_args import WorkerArgs

__all__ = ["WorkerResult", "run_worker", "worker"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerResult:
    study_name: str
    n_trials: int  # the study's budget of trainings (studies.run.budget.is_counted)
    completed: int  # trials counted toward it when this worker stopped
    stopped: StopReason

    @property
    def exit_code(self) -> int:
        return exit_status(self.stopped, completed=self.completed)


# NOTE: the keyword arguments a worker shares with launch() (storage, wandb, heartbeats, runs
# folder) are each function's public signature; WorkerArgs is their one home on the CLI side.
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
    stall_s: int | None = None,
) -> WorkerResult:
    """Join an existing study and run trials until its budget is spent.

    Args:
        study_name: the study (may be left out when the storage holds exactly one).
        runs_dir: where the default storage ``<runs_dir>/<study>.db`` is and wandb runs go
            (default: the folder the study was launched with, for wandb; ``runs`` to find it).
        stall_s: while waiting for other workers, give up when nothing in the study changes
            for this long (default: ten grace periods, at least a minute).
    """
    from studies.run.worker_args import WorkerArgs

    return run_worker(
        WorkerArgs(
            study_name=study_name, storage=storage, device=device, wandb_mode=wandb_mode,
            quiet=not progress, heartbeat_s=heartbeat_s, grace_s=grace_s, stall_s=stall_s,
            runs_dir=None if runs_dir is None else str(runs_dir),
        )
    )  # fmt: skip


def run_worker(args: WorkerArgs) -> WorkerResult:
    """:func:`worker` with the settings of an ``r3dnas worker`` command line."""
    import optuna

    from studies.run.loop import check_data, quiet_optuna
    from studies.run.run_study import run_study, with_device
    from studies.study.record import StudyRecord
    from studies.study.storage import (
        locate_study,
        name_objectives,
        open_storage,
        storage_settings,
        study_spec,
        use_search,
    )
    from studies.tracking.tracker import open_tracker

    settings = storage_settings(args.heartbeat_s, args.grace_s, args.stall_s)
    study_name, url = locate_study(
        args.study_name, storage=args.storage, runs_dir=args.runs_dir or RUNS_DIR
    )
    # NOTE: the study is loaded once; its spec (stored at launch) then decides the sampler and
    # pruner this process sets on it (Optuna stores neither).
    with quiet_optuna():
        study = optuna.load_study(study_name=study_name, storage=open_storage(url, settings))
        record = StudyRecord(study)
        budget = record.n_trials
        if budget is None:
            raise ConfigError(
                f"study {study_name!r} records no n_trials; start it with r3dnas launch"
            )
        spec = with_device(study_spec(study), args.device)
        datasets = check_data(spec)  # a missing file is one error now, not a failure per trial
        # NOTE: each worker gets its own sampler seed (the spec's + pid), or workers started
        # together would all propose the same first parameters.
        worker_spec = dataclasses.replace(
            spec, study=dataclasses.replace(spec.study, seed=spec.study.seed + os.getpid())
        )
        use_search(study, worker_spec)
        name_objectives(study)
    wandb_dir = record.runs_dir_or(args.runs_dir)
    tracker = open_tracker(spec.wandb, study_name=study_name, mode=args.wandb_mode,
                           run_dir=wandb_dir / study_name)  # fmt: skip
    outcome = run_study(
        study, spec, n_trials=budget, tracker=tracker, datasets=datasets, settings=settings,
        progress=not args.quiet, label=f"{study_name} worker {os.getpid()}",
    )  # fmt: skip
    tracker.close()
    completed = count_counted(study.get_trials(deepcopy=False))
    return WorkerResult(
        study_name=study_name, n_trials=budget, completed=completed, stopped=outcome.stopped
    )
