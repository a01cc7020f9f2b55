"""One function runs a study's trials, whatever decides them.

A study's trials come from its sampler (``launch``), an enqueued grid (``ablate``, and
``table build``, which is an ablation over every searched parameter) or both; ``r3dnas worker``
joins a study someone else prepared. Each of those entry points only prepares the study and
reports on it: running the trials, in this process or in local worker processes, is
:func:`run_study`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studies.run.budget import count_trials
from studies.run.loop import StopReason

if TYPE_CHECKING:
    import optuna
    from torch.utils.data import Dataset

    from studies.run.worker_args import WorkerArgs
    from studies.study.sections import StudySpec
    from studies.study.storage import StorageSettings
    from studies.tracking.tracker import StudyTracker

__all__ = ["RunOutcome", "run_study"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunOutcome:
    stopped: StopReason
    worker_exit_codes: tuple[int, ...] = ()  # with local workers, one per worker process


def run_study(
    study: optuna.Study,
    spec: StudySpec,
    *,
    n_trials: int,
    tracker: StudyTracker,
    datasets: tuple[Dataset, Dataset],
    settings: StorageSettings,
    progress: bool,
    label: str,
    workers: int = 1,
    worker_args: WorkerArgs | None = None,
) -> RunOutcome:
    """Run trials until ``n_trials`` are complete (the run loop's guarantees hold).

    Args:
        workers: with more than one, the trials run in that many local ``r3dnas worker``
            processes started from ``worker_args`` (one GPU each where there are GPUs), and
            this process only waits for them; ``tracker`` and ``datasets`` are then unused.
        worker_args: the workers' command line (study, storage, wandb mode, heartbeats).
    """
    if workers > 1:
        from studies.run.loop import spawn_workers

        if worker_args is None:
            raise ValueError("run_study: workers > 1 needs worker_args")  # internal misuse
        bar = _WorkersProgress(study, n_trials, label) if progress else None
        try:
            codes = tuple(spawn_workers(workers, args=worker_args,
                                        watch=bar.update if bar else None))  # fmt: skip
        except KeyboardInterrupt:
            return RunOutcome(stopped="interrupted")
        finally:
            if bar is not None:
                bar.close()
        completed, _ = count_trials(study)
        stopped: StopReason = "done" if completed >= n_trials else "gave_up"
        # NOTE: a worker that stopped on a stuck sampler exits 3 (studies.run.loop.exit_status)
        if stopped == "gave_up" and 3 in codes and set(codes) <= {0, 3}:
            stopped = "stuck"
        return RunOutcome(stopped=stopped, worker_exit_codes=codes)
    from studies.run.loop import run_local
    from studies.run.objective import TrialRunner

    runner = TrialRunner(spec, tracker=tracker, datasets=datasets)
    stopped = run_local(
        study, runner, n_trials=n_trials, timeout_s=spec.study.timeout_s, settings=settings,
        progress=progress, label=label,
    )  # fmt: skip
    return RunOutcome(stopped=stopped)


def with_device(spec: StudySpec, device: str | None) -> StudySpec:
    """``spec`` measuring and training on ``device`` (None: as the spec says)."""
    if device is None:
        return spec
    measure = dataclasses.replace(spec.measure, device=device)
    train = dataclasses.replace(spec.train, device=device)
    return dataclasses.replace(spec, measure=measure, train=train)


class _WorkersProgress:
    """The study's progress bar in a process that only waits for its local workers (they run
    quietly): trials counted out of the budget, and how many run now."""

    def __init__(self, study: optuna.Study, n_trials: int, label: str) -> None:
        from tqdm import tqdm

        self.study, self.n_trials = study, n_trials
        complete, _ = count_trials(study)
        self.bar = tqdm(total=n_trials, initial=min(complete, n_trials), desc=label,
                        unit="trial")  # fmt: skip

    def update(self) -> None:
        complete, running = count_trials(self.study)
        self.bar.n = min(complete, self.n_trials)
        self.bar.set_postfix_str(f"{running} running", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.update()
        self.bar.close()
