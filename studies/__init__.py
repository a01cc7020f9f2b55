"""studies: Optuna studies over the search space, their Pareto fronts and reproduction.

Every command of the ``r3dnas`` CLI is also a function here. The modules import torch, optuna,
wandb and pandas inside functions, so importing the CLI stays instant.
"""

from __future__ import annotations

from studies.core.dominance import hypervolume
from studies.core.redact import redact, redact_url
from studies.results.export import export
from studies.results.frames import trials
from studies.results.mmaction2_config import mmaction2_config_text
from studies.results.pareto import format_pareto, pareto, plot_pareto, select_trial
from studies.results.reproduce import ReproduceResult, ReproductionMismatch, reproduce
from studies.run.ablation import AblationResult, ablate, prepare_ablation
from studies.run.heartbeat import reap_stale_trials
from studies.run.launch import LaunchResult, launch, prepare_study
from studies.run.loop import spawn_workers
from studies.run.workers import worker
from studies.study.sections import StudySpec
from studies.study.spec import load_spec, spec_names
from studies.study.storage import stored_spec
from studies.tracking.offline import OfflineRun, find_offline_runs, read_offline_run
from studies.tracking.tracker import StudyTracker, TrackingConfig, TrialRun

__all__ = [
    "AblationResult",
    "LaunchResult",
    "OfflineRun",
    "ReproduceResult",
    "ReproductionMismatch",
    "StudySpec",
    "StudyTracker",
    "TrackingConfig",
    "TrialRun",
    "ablate",
    "export",
    "find_offline_runs",
    "format_pareto",
    "hypervolume",
    "launch",
    "load_spec",
    "mmaction2_config_text",
    "pareto",
    "plot_pareto",
    "prepare_ablation",
    "prepare_study",
    "read_offline_run",
    "reap_stale_trials",
    "redact",
    "redact_url",
    "reproduce",
    "select_trial",
    "spawn_workers",
    "spec_names",
    "stored_spec",
    "trials",
    "worker",
]
