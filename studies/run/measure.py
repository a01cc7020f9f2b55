"""How a trial's metrics are obtained: the one replaceable step of a trial.

:class:`~studies.run.objective.TrialRunner` does the bookkeeping around a trial (identity, reuse,
wandb, the recorded state); what the numbers are comes from a :class:`Measure`, a callable
``(MeasureRequest) -> metrics``. :class:`TrainingMeasure` is the real one::

    analytic cost -> constraints -> latency (predicted and/or timed) -> train -> FLOPs

in that order so that expensive work happens last: the analytic cost rejects FLOP/parameter
budgets before anything is built, and latency (seconds) is measured before training (minutes),
so a latency budget also never trains an infeasible network.

Another way to obtain metrics (e.g. a lookup in a benchmark table instead of training) is
another :class:`Measure`: it returns the same metrics dict, feeds its per-epoch curve through
``on_epoch`` (which logs it and lets the pruner stop the trial), raises :class:`Infeasible` for
a broken constraint (see :func:`check_constraints`) and ``TrialFailure`` for a failure. Before
the first epoch it records the costs it already knows as user attributes
(:func:`record_known`), and before each ``on_epoch`` the curve so far (``history``): the
multi-objective pruners (:mod:`studies.run.pruning`) read both from the shared storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from search_space.errors import TrialFailure

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import optuna
    from torch.utils.data import Dataset

    from runners.training.accuracy import AccuracyResult
    from search_space.config import ResNet3dConfig
    from studies.study.sections import Constraints, StudySpec

__all__ = [
    "EpochHook",
    "Infeasible",
    "Measure",
    "MeasureRequest",
    "TrainingMeasure",
    "check_constraints",
    "record_known",
]

# (epoch, that epoch's metrics such as val_top1) -> None; raises optuna.TrialPruned to stop.
EpochHook = Callable[[int, dict[str, Any]], None]


class Infeasible(TrialFailure):
    """The configuration breaks a constraint or cannot run on the declared input shape."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class MeasureRequest:
    """One trial to measure, as :class:`~studies.run.objective.TrialRunner` asks for it.

    One value rather than six arguments, so that every :class:`Measure` (and every helper it
    hands the trial to) takes the same thing.

    Attributes:
        trial: the running trial, for constraints and the attributes that describe how it
            was measured (device, history, ...).
        config: the network to measure.
        seed: the training seed.
        timings: seconds per phase, filled in as phases end.
        on_epoch: called after each epoch (logging, status line, pruning).
        checkpoint: where the trained weights go (None: keep none).
    """

    trial: optuna.Trial
    config: ResNet3dConfig
    seed: int
    timings: dict[str, float]
    on_epoch: EpochHook
    checkpoint: Path | None


class Measure(Protocol):
    """Obtains one trial's metrics (``top1``, ``gflops``, ``params_m``, ``latency_ms``, ...)."""

    def __call__(self, request: MeasureRequest) -> dict[str, float]: ...


def check_constraints(
    trial: optuna.Trial, constraints: Constraints, measured: dict[str, Any]
) -> list[str]:
    """Record every constraint on the trial; return the violated ones as readable text."""
    violated = []
    pairs = (
        ("gflops", constraints.max_gflops, measured.get("gflops")),
        ("params_m", constraints.max_params_m, measured.get("params_m")),
        ("latency_ms", constraints.max_latency_ms, measured.get("latency_ms")),
    )
    for name, limit, value in pairs:
        if limit is None or value is None:
            continue
        trial.set_constraint(name, value - limit)
        if value > limit:
            violated.append(f"{name} {value:.4g} > max {limit:.4g}")
    return violated


def record_known(trial: optuna.Trial, metrics: dict[str, float]) -> None:
    """Record the metrics known before training (costs) on the trial, so that a pruner deciding
    in any worker sees them while the trial trains."""
    for key, value in metrics.items():
        trial.set_user_attr(key, value)


class TrainingMeasure:
    """The real measurement of a study spec; datasets are built once and shared by all trials."""

    def __init__(
        self, spec: StudySpec, *, datasets: tuple[Dataset, Dataset] | None = None
    ) -> None:
        self.spec = spec
        self._datasets = datasets

    def datasets(self) -> tuple[Dataset, Dataset]:
        if self._datasets is None:
            from runners.data.datasets import build_datasets

            self._datasets = build_datasets(self.spec.data)
        return self._datasets

    def __call__(self, request: MeasureRequest) -> dict[str, float]:
        """Cost, latency, training and FLOPs; the trained weights go to ``checkpoint``.

        The trial's study is this process's pause scope (:mod:`runners.latency.quiet`): its timer
        pauses this study's training workers only, and only its own timers pause it.
        """
        from runners.latency.quiet import pause_scope

        with pause_scope(request.trial.study.study_name):
            return self._measure(request)

    def _measure(self, request: MeasureRequest) -> dict[str, float]:
        spec = self.spec
        trial, config, timings = request.trial, request.config, request.timings
        checkpoint = request.checkpoint
        metrics = self._cost(trial, config, timings)
        if spec.measure.latency != "measured":
            metrics.update(self._predict_latency(trial, config, timings))
        if self._times_latency():
            predicted = metrics.get("latency_pred_ms")
            metrics.update(self._time_latency(trial, config, timings, predicted))
        record_known(trial, metrics)
        # NOTE: always trained, objective or not: every Pareto row shows top1.
        train_set, val_set = self.datasets()
        t = time.perf_counter()
        with self._pausable():
            on_epoch = _recording(trial, request.on_epoch)
            result = self._train(config, request.seed, on_epoch, checkpoint)
        timings["train_s"] = time.perf_counter() - t
        try:
            metrics.update(_record_training(trial, result, train_set, val_set))
            metrics.update(self._flops(config, timings))
        except BaseException:
            # NOTE: a trial that fails after training (or is interrupted) keeps no weights.
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
            raise
        return metrics

    def _pausable(self) -> contextlib.AbstractContextManager[None]:
        """While it trains, a trial may be paused by another worker on this machine that
        times a network, so latency does not depend on what else the study runs
        (runners.latency.quiet); outside training (e.g. a notebook between trials) it never is."""
        if self.spec.measure.latency_isolation != "pause":
            return contextlib.nullcontext()
        from runners.latency.quiet import pausable

        return pausable()

    def _cost(
        self, trial: optuna.Trial, config: ResNet3dConfig, timings: dict[str, float]
    ) -> dict[str, float]:
        """The analytic cost, checked against the FLOP/parameter budgets before building."""
        from search_space.cost import cost

        spec = self.spec
        t = time.perf_counter()
        analytic = cost(config, spec.measure.input_shape, include_head=spec.measure.include_head,
                        num_classes=spec.data.num_classes)  # fmt: skip
        timings["cost_s"] = time.perf_counter() - t
        metrics = {
            "gflops": analytic.gflops,
            "params": float(analytic.params),
            "params_m": analytic.params_m,
        }
        violated = check_constraints(trial, spec.constraints, metrics)
        if violated:
            raise Infeasible("constraint violated before training: " + "; ".join(violated))
        return metrics

    def _predict_latency(
        self, trial: optuna.Trial, config: ResNet3dConfig, timings: dict[str, float]
    ) -> dict[str, float]:
        """Latency from the spec's table, checked against ``max_latency_ms`` before anything
        is built: ``latency_pred_ms``, and for ``latency = "predicted"`` also ``latency_ms``
        and ``throughput_clips_s`` (batch 1)."""
        from search_space.latency_model import predict_latency

        measure = self.spec.measure
        t = time.perf_counter()
        table = measure.load_latency_table()
        if table is None:  # pragma: no cover - the spec requires a table for this source
            raise TrialFailure(f"[measure] latency = {measure.latency!r} needs a latency_table")
        prediction = predict_latency(config, table, measure.input_shape)
        timings["latency_pred_s"] = time.perf_counter() - t
        if prediction.missing:
            raise TrialFailure(
                f"latency table {measure.latency_table} has no entry for "
                f"{len(prediction.missing)} layer(s) of this network, e.g. "
                f"{prediction.missing[0]!r}; rebuild it for this space and clip with "
                "`r3dnas latency-table`"
            )
        trial.set_user_attr(
            "latency_table",
            {"path": measure.latency_table, "device": table.device,
             "threads": table.threads, "mode": table.mode},
        )  # fmt: skip
        metrics = {"latency_pred_ms": prediction.latency_ms}
        if measure.latency == "predicted":
            metrics["latency_ms"] = prediction.latency_ms
            metrics["throughput_clips_s"] = 1000.0 / prediction.latency_ms
            trial.set_user_attr("device", table.device)
            trial.set_user_attr("latency_mode", table.mode)
        violated = check_constraints(
            trial, self.spec.constraints, {"latency_ms": prediction.latency_ms}
        )
        if violated:
            raise Infeasible("constraint violated before building (predicted): " + violated[0])
        return metrics

    def _times_latency(self) -> bool:
        """Whether latency is timed here: asked for, an objective, or a budget needs it."""
        spec = self.spec
        return spec.measure.latency != "predicted" and (
            spec.measure.measure_latency
            or "latency_ms" in spec.objective_names
            or spec.constraints.max_latency_ms is not None
        )

    def _time_latency(
        self,
        trial: optuna.Trial,
        config: ResNet3dConfig,
        timings: dict[str, float],
        predicted_ms: float | None = None,
    ) -> dict[str, float]:
        """Latency, timed again while unreliable (:mod:`runners.latency.check`)."""
        from runners.latency.check import measure_reliably
        from runners.latency.measure import measure_latency

        spec = self.spec
        t = time.perf_counter()
        latency, flag, attempts = measure_reliably(
            lambda: measure_latency(
                config, spec.measure.input_shape, spec.measure.latency_config()
            ),
            predicted_ms=predicted_ms,
        )
        timings["latency_s"] = time.perf_counter() - t
        trial.set_user_attr("device", latency.device)
        trial.set_user_attr("latency_mode", latency.mode)
        if attempts > 1:
            trial.set_user_attr("latency_attempts", attempts)
        if flag is not None:  # NOTE: stored with its flag; the reference point ignores outliers
            trial.set_user_attr("latency_unreliable", flag)
            _log.warning("trial %d: latency %.4g ms unreliable after %d attempts: %s",
                         trial.number, latency.latency_ms, attempts, flag)  # fmt: skip
        violated = check_constraints(trial, spec.constraints, {"latency_ms": latency.latency_ms})
        if violated:
            raise Infeasible("constraint violated before training: " + "; ".join(violated))
        return {
            "latency_ms": latency.latency_ms,
            "latency_p90_ms": latency.p90_ms,
            "throughput_clips_s": latency.throughput_clips_s,
        }

    def _train(
        self, config: ResNet3dConfig, seed: int, on_epoch: EpochHook, checkpoint: Path | None
    ) -> AccuracyResult:
        from runners.training.accuracy import train_and_evaluate

        spec = self.spec
        train_set, val_set = self.datasets()
        return train_and_evaluate(
            config,
            train_set,
            val_set,
            dataclasses.replace(spec.train, seed=seed),
            num_classes=spec.data.num_classes,
            num_workers=spec.data.num_workers,
            on_epoch=on_epoch,
            checkpoint_path=checkpoint,
        )

    def _flops(self, config: ResNet3dConfig, timings: dict[str, float]) -> dict[str, float]:
        """FLOPs and parameters counted by fvcore on the built network (eval mode)."""
        from runners.scores.flops import measure_flops

        spec = self.spec
        t = time.perf_counter()
        flops = measure_flops(
            config, spec.measure.input_shape, include_head=spec.measure.include_head,
            num_classes=spec.data.num_classes,
        )  # fmt: skip
        timings["flops_s"] = time.perf_counter() - t
        return {"gflops": flops.gflops, "params": float(flops.params)}


def _recording(trial: optuna.Trial, on_epoch: EpochHook) -> EpochHook:
    """``on_epoch`` after recording the curve so far as the trial's ``history``."""
    history: list[dict[str, Any]] = []

    def hook(epoch: int, values: dict[str, Any]) -> None:
        history.append(dict(values))
        trial.set_user_attr("history", history)
        on_epoch(epoch, values)

    return hook


def _record_training(
    trial: optuna.Trial, result: AccuracyResult, train_set: Dataset, val_set: Dataset
) -> dict[str, float]:
    """Accuracy, and what the export needs to say what was measured: the per-epoch history, the
    precision and device the trial trained with ("auto" resolved), the videos it skipped."""
    trial.set_user_attr("history", [dict(h) for h in result.history])
    trial.set_user_attr("peak_memory_mb", result.peak_memory_mb)
    trial.set_user_attr("train_device", result.device)
    trial.set_user_attr("amp", result.amp)
    if hasattr(train_set, "skipped"):
        skipped = {"train": list(train_set.skipped), "val": list(getattr(val_set, "skipped", []))}
        trial.set_user_attr("skipped_videos", skipped)
    if not math.isfinite(result.top1):
        raise TrialFailure(f"top1 is not finite: {result.top1}")
    return {"top1": result.top1, "top5": result.top5}
