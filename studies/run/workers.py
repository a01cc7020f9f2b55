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
from studies.run.loop import StopReason, exit_status, is_completed

if TYPE_CHECKING:
    from studies.study.spec import StudySpec

__all__ = ["WorkerResult", "worker"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerResult:
    study_name: str
    n_trials: int  # the study's budget of completed trials
    completed: int  # completed trials in the study when this worker stopped
    stopped: StopReason

    @property
    def exit_code(self) -> int:
        return exit_status(self.stopped, completed=self.completed)


def _spec_for_device(spec: StudySpec, device: str | None) -> StudySpec:
    if device is None:
        return spec
    measure = dataclasses.replace(spec.measure, device=device)
    train = dataclasses.replace(spec.train, device=device)
    return dataclasses.replace(spec, measure=measure, train=train)


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
    import optuna

    from studies.run.loop import check_data, quiet_optuna, run_local
    from studies.run.objective import TrialRunner
    from studies.study.samplers import build_pruner, build_sampler
    from studies.study.storage import locate_study, open_storage, storage_settings, study_spec
    from studies.tracking.tracker import open_tracker

    settings = storage_settings(heartbeat_s, grace_s, stall_s)
    study_name, url = locate_study(study_name, storage=storage, runs_dir=runs_dir or "runs")
    backend = open_storage(url, settings)
    with quiet_optuna():
        probe = optuna.load_study(study_name=study_name, storage=backend)
        budget = probe.user_attrs.get("n_trials")
        if budget is None:
            raise ConfigError(
                f"study {study_name!r} records no n_trials; start it with r3dnas launch"
            )
        spec = _spec_for_device(study_spec(probe), device)
        datasets = check_data(spec)  # a missing file is one error now, not a failure per trial
        # NOTE: each worker gets its own sampler seed (the spec's + pid), or workers started
        # together would all propose the same first parameters.
        worker_spec = dataclasses.replace(
            spec, study=dataclasses.replace(spec.study, seed=spec.study.seed + os.getpid())
        )
        study = optuna.load_study(
            study_name=study_name,
            storage=backend,
            sampler=build_sampler(worker_spec),
            pruner=build_pruner(spec),
        )
    wandb_dir = Path(runs_dir or study.user_attrs.get("runs_dir", "runs"))
    tracker = open_tracker(spec.wandb, study_name=study_name, mode=wandb_mode,
                           run_dir=wandb_dir / study_name)  # fmt: skip
    runner = TrialRunner(spec, tracker=tracker, datasets=datasets)
    stopped = run_local(
        study, runner, n_trials=int(budget), timeout_s=spec.study.timeout_s, settings=settings,
        progress=progress, label=f"{study_name} worker {os.getpid()}",
    )  # fmt: skip
    tracker.close()
    completed = sum(is_completed(t) for t in study.get_trials(deepcopy=False))
    return WorkerResult(
        study_name=study_name, n_trials=int(budget), completed=completed, stopped=stopped
    )
