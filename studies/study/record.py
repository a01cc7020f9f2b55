"""What r3dnas keeps on a study: its Optuna user attributes, read and written here only.

A study's attributes are its memory across processes and machines: a worker started later
learns the budget and the runs folder from them, ``pareto`` and ``trials`` the objective names,
``export`` and ``reproduce`` the spec. They are string keys in a shared database, where a
misspelt key reads as a silent default, so every key is named once, here, with its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studies.core.defaults import RUNS_DIR

if TYPE_CHECKING:
    import optuna

__all__ = ["StudyRecord"]

_OBJECTIVES = "objectives"  # list of objective names, in the order of study.directions
_SPEC = "spec"  # the spec's TOML tables as parsed at launch, credentials redacted
_SPEC_SOURCE = "spec_source"  # where the spec came from (a shipped name or a path)
_N_TRIALS = "n_trials"  # the budget of completed trials
_RUNS_DIR = "runs_dir"  # the runs folder the study was launched with
_ABLATION_GRID = "ablation_grid"  # JSON of the ablation's factors and seeds
_TABLE_LATENCY = "table_latency"  # {digest: latency record} of a benchmark table's networks


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """The r3dnas attributes of ``study``: typed reads, and one writer per thing recorded."""

    study: optuna.Study

    @property
    def _attrs(self) -> dict[str, Any]:
        return self.study.user_attrs

    @property
    def made_by_r3dnas(self) -> bool:
        return _OBJECTIVES in self._attrs

    @property
    def objectives(self) -> list[str]:
        """The objective names; ``value0``, ``value1``, ... for a study r3dnas did not make."""
        recorded = self._attrs.get(_OBJECTIVES)
        return list(recorded or [f"value{i}" for i in range(len(self.study.directions))])

    @property
    def recorded_objectives(self) -> list[str] | None:
        """The objective names as recorded (None for a study r3dnas did not make)."""
        recorded = self._attrs.get(_OBJECTIVES)
        return None if recorded is None else list(recorded)

    @property
    def spec(self) -> dict[str, Any] | None:
        """The spec's tables as recorded at launch (None for a study r3dnas did not make)."""
        return self._attrs.get(_SPEC)

    @property
    def n_trials(self) -> int | None:
        """The budget of completed trials (None: the study was never launched by r3dnas)."""
        value = self._attrs.get(_N_TRIALS)
        return None if value is None else int(value)

    @property
    def runs_dir(self) -> Path | None:
        """The runs folder the study was launched with (None: not recorded)."""
        value = self._attrs.get(_RUNS_DIR)
        return None if value is None else Path(value)

    @property
    def ablation_grid(self) -> str | None:
        return self._attrs.get(_ABLATION_GRID)

    @property
    def table_latency(self) -> dict[str, dict[str, Any]]:
        return dict(self._attrs.get(_TABLE_LATENCY, {}))

    def runs_dir_or(self, runs_dir: str | Path | None) -> Path:
        """``runs_dir`` when given, else the study's own, else the default ``runs``."""
        if runs_dir is not None:
            return Path(runs_dir)
        return self.runs_dir or Path(RUNS_DIR)

    def record_spec(self, *, objectives: list[str], spec: dict[str, Any], source: str) -> None:
        """Written once, when the study is created (``spec`` already redacted)."""
        self.study.set_user_attr(_OBJECTIVES, objectives)
        self.study.set_user_attr(_SPEC, spec)
        self.study.set_user_attr(_SPEC_SOURCE, source)

    def record_budget(self, *, n_trials: int, runs_dir: str | Path) -> None:
        """Written at every launch: a later launch may raise the budget or move the folder."""
        self.study.set_user_attr(_N_TRIALS, n_trials)
        self.study.set_user_attr(_RUNS_DIR, str(runs_dir))

    def record_n_trials(self, n_trials: int) -> None:
        """The budget alone: confirmation rounds raise it for the workers that join them."""
        self.study.set_user_attr(_N_TRIALS, n_trials)

    def record_ablation_grid(self, key: str) -> None:
        self.study.set_user_attr(_ABLATION_GRID, key)

    def record_table_latency(self, latency: dict[str, dict[str, Any]]) -> None:
        self.study.set_user_attr(_TABLE_LATENCY, latency)
