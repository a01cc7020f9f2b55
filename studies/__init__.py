"""studies: Optuna studies over the search space, their Pareto fronts and reproduction.

Every command of the ``r3dnas`` CLI is also a function here. The modules import torch, optuna,
wandb and pandas inside functions, so importing the CLI stays instant.
"""

from __future__ import annotations

from studies.ablation import AblationResult, ablate, prepare_ablation
from studies.export import export
from studies.frames import trials
from studies.heartbeat import reap_stale_trials
from studies.launch import LaunchResult, launch, prepare_study
from studies.loop import spawn_workers
from studies.mmaction2_config import mmaction2_config_text
from studies.pareto import format_pareto, hypervolume, pareto, plot_pareto, select_trial
from studies.redact import redact, redact_url
from studies.reproduce import ReproduceResult, ReproductionMismatch, reproduce
from studies.spec import StudySpec, load_spec, spec_names
from studies.storage import stored_spec
from studies.tracking import StudyTracker, TrackingConfig, TrialRun
from studies.wandb_offline import OfflineRun, find_offline_runs, read_offline_run
from studies.workers import worker

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
