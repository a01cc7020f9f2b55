"""What a study spec holds: one frozen dataclass per section, with every default.

:mod:`studies.study.spec` reads a TOML file into these (checking every key); the rest of the
code reads them. A field's default here is the spec's default: the parsers take it from the
field, and ``tests/test_docs.py`` holds ``docs/spec.md`` to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from search_space.errors import ConfigError
from studies.tracking.tracker import TrackingConfig

if TYPE_CHECKING:
    from runners.data.datasets import DataConfig
    from runners.latency.measure import LatencyConfig
    from runners.training.accuracy import TrainConfig
    from search_space.latency_model import LatencyTable
    from search_space.space import SearchSpace

__all__ = [
    "COSTS_BEFORE_TRAINING",
    "KEEP_CHECKPOINTS",
    "LATENCY_SETTINGS",
    "LATENCY_SOURCES",
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "Constraints",
    "Direction",
    "MeasureSpec",
    "Objective",
    "StudySection",
    "StudySpec",
    "load_latency_table",
    "parse_objective",
]

Direction = Literal["maximize", "minimize"]

# objective name -> its natural direction; these are the metrics a trial records.
OBJECTIVES: dict[str, Direction] = {
    "top1": "maximize",
    "top5": "maximize",
    "gflops": "minimize",
    "params_m": "minimize",
    "latency_ms": "minimize",
    "throughput_clips_s": "maximize",
}
KEEP_CHECKPOINTS = (
    "none",
    "front",
    "all",
)  # [train] keep_checkpoints: which weights a study keeps
# [measure] latency: where a trial's latency_ms comes from. "measured": timed on this machine;
# "predicted": from a latency table (any device it was built on, nothing is timed); "both":
# predicted (checked against max_latency_ms before anything is built) and measured.
LATENCY_SOURCES = ("measured", "predicted", "both")
SAMPLERS = ("tpe", "nsga2", "gp", "random", "grid", "cost_aware")
PRUNERS = ("none", "median", "pareto", "moasha")
# Metrics a measure knows before the first epoch: what "pareto" and "moasha" compare beside top1.
COSTS_BEFORE_TRAINING = ("gflops", "params_m", "latency_ms", "throughput_clips_s")


@dataclass(frozen=True, kw_only=True, slots=True)
class Objective:
    name: str
    direction: Direction

    def __str__(self) -> str:
        return f"{self.name}:{'max' if self.direction == 'maximize' else 'min'}"


def parse_objective(text: str) -> Objective:
    """``"top1"``, ``"top1:max"`` or ``"latency_ms:min"`` -> :class:`Objective`."""
    name, _, direction = str(text).partition(":")
    name = name.strip()
    if name not in OBJECTIVES:
        raise ConfigError(
            f"objective {name!r} is not a metric; choose from {', '.join(OBJECTIVES)}"
        )
    direction = direction.strip().lower()
    if not direction:
        return Objective(name=name, direction=OBJECTIVES[name])
    aliases = {
        "max": "maximize",
        "maximize": "maximize",
        "min": "minimize",
        "minimize": "minimize",
    }
    if direction not in aliases:
        raise ConfigError(f"objective {text!r}: direction must be 'max' or 'min'")
    if aliases[direction] != OBJECTIVES[name]:
        # NOTE: the samplers, pruners and reference points read each metric one way (a
        # cost-aware model knows GFLOPs go down); the other way round was a study of nothing
        natural = "max" if OBJECTIVES[name] == "maximize" else "min"
        raise ConfigError(
            f"objective {text!r}: {name} is only {OBJECTIVES[name]}d; write {name} or "
            f"{name}:{natural}"
        )
    return Objective(name=name, direction=aliases[direction])  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class StudySection:
    name: str
    objectives: tuple[Objective, ...] = (
        Objective(name="top1", direction="maximize"),
        Objective(name="gflops", direction="minimize"),
        Objective(name="latency_ms", direction="minimize"),
    )
    sampler: str = "tpe"
    seed: int = 0
    n_trials: int = 8
    timeout_s: float | None = None
    enqueue_presets: tuple[str, ...] = ()
    n_startup_trials: int = 4
    # "median": Optuna's, single-objective studies only; "pareto" (studies.run.pruning) and its
    # baseline "moasha": multi-objective studies of top1 and costs known before training.
    pruner: str = "none"
    pruner_margin: float = 2.0  # top-1 points added to the "pareto" pruner's optimistic bound
    # NOTE: tabular mode: trials read their measurements from this benchmark table (a CSV of
    # r3dnas table export) instead of training; None trains for real.
    table: str | None = None
    # NOTE: after the budget, train the networks likeliest to be on the front with this many
    # more seeds (studies.run.confirm); results are then means over seeds.
    confirm_seeds: int = 0


# [measure] key -> the LatencyConfig field it sets (and that validates it); written once, read
# both ways: to build the config, and to name the spec's key in the config's errors.
LATENCY_SETTINGS = {
    "device": "device",
    "latency_mode": "mode",
    "latency_warmup": "warmup",
    "latency_repeats": "repeats",
    "latency_threads": "threads",
    "throughput_batch": "batch_size",
    "latency_isolation": "isolation",
    "latency_reference": "reference",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasureSpec:
    """How FLOPs and latency are measured for each trial."""

    input_shape: tuple[int, int, int, int, int] = (1, 3, 8, 224, 224)
    device: str = "auto"
    latency_mode: str = "eager"
    latency_warmup: int = 3
    latency_repeats: int = 40
    latency_threads: int | None = None
    throughput_batch: int = 1
    include_head: bool = False
    measure_latency: bool = True
    # NOTE: see LATENCY_SOURCES; a table is needed for "predicted" and "both".
    latency: str = "measured"
    latency_table: str | None = None
    latency_isolation: str = "pause"
    # NOTE: time a fixed reference network beside each one, so that the machine's drift
    # cancels (retest within ±10% went from 31% to 94% of 100 networks here: benchmarks/README).
    latency_reference: bool = True

    def latency_config(self) -> LatencyConfig:
        """The :class:`runners.latency.measure.LatencyConfig` these settings describe (its
        blocks follow from the repeats: :func:`~runners.latency.stats.default_blocks`)."""
        from runners.latency.measure import LatencyConfig

        return LatencyConfig(
            **{name: getattr(self, key) for key, name in LATENCY_SETTINGS.items()}
        )

    def load_latency_table(self) -> LatencyTable | None:
        """The :class:`~search_space.latency_model.LatencyTable` at ``latency_table`` (read once
        per process), or ``None`` when there is none."""
        if self.latency_table is None:
            return None
        return load_latency_table(self.latency_table)


@dataclass(frozen=True, kw_only=True, slots=True)
class Constraints:
    """Budgets checked analytically before a trial is trained (``None`` = unconstrained)."""

    max_gflops: float | None = None
    max_params_m: float | None = None
    max_latency_ms: float | None = None

    def any(self) -> bool:
        return any(
            v is not None for v in (self.max_gflops, self.max_params_m, self.max_latency_ms)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class StudySpec:
    study: StudySection
    space: SearchSpace
    data: DataConfig
    train: TrainConfig
    measure: MeasureSpec
    constraints: Constraints
    wandb: TrackingConfig
    source: str
    raw: dict[str, Any] = field(default_factory=dict)
    keep_checkpoints: str = "front"  # [train] keep_checkpoints: see KEEP_CHECKPOINTS

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.study.objectives)

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(o.direction for o in self.study.objectives)


def load_latency_table(path: str) -> LatencyTable:
    """The table at ``path``, read once per process (again when the file changes)."""
    from search_space.latency_model import LatencyTable

    key = (path, Path(path).stat().st_mtime_ns if Path(path).is_file() else 0)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = LatencyTable.load(path)
    return table


_TABLES: dict[tuple[str, int], LatencyTable] = {}
