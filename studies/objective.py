"""One trial, end to end: sample -> identity -> reuse or measure -> record.

:class:`TrialRunner` does the bookkeeping of a trial; how its metrics are obtained is one
replaceable step, a :class:`~studies.measure.Measure` (default: the real one,
:class:`~studies.measure.TrainingMeasure`). Every trial records, as user attributes:

* ``state``: complete | reused | infeasible | failed | pruned (``fail_reason`` says why);
* its identity: ``config`` (canonical ``ResNet3dConfig`` as a dict), ``digest`` (12 hex),
  ``arch`` (one readable line), ``seed``, ``signature`` (what else decides its metrics);
* its metrics, ``timings`` (seconds per phase), ``versions``, ``device``, and ``checkpoint``
  (trained weights relative to the runs folder, see :mod:`studies.checkpoints`).

The Optuna storage is the source of truth, wandb only a mirror.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import R3dnasError, TrialFailure
from search_space.space import InfeasibleConfig
from studies.measure import EpochHook, Infeasible, Measure, TrainingMeasure, check_constraints

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    from torch.utils.data import Dataset

    from search_space.config import ResNet3dConfig
    from studies.spec import StudySpec
    from studies.tracking import StudyTracker, TrialRun
    from studies.tracking import TrialState as RunState

__all__ = ["TrialRunner", "library_versions", "readable_architecture"]

_log = logging.getLogger(__name__)

# Attributes a reused trial copies from the earlier trial it reuses (besides the objectives).
REUSED_ATTRS = ("gflops", "params", "params_m", "latency_ms", "top1", "top5", "amp",
                "train_device", "skipped_videos", "latency_pred_ms", "latency_table")  # fmt: skip


def readable_architecture(config: ResNet3dConfig) -> str:
    """One line a person can read, e.g. ``R50 inflate 111-1010-101010-010 3x1x1 pool2 ...``."""
    inflate = "-".join("".join(str(b) for b in stage) for stage in config.inflate)
    parts = [f"R{config.depth}", f"inflate {inflate}"]
    if any(any(stage) for stage in config.inflate) and config.block_type == "bottleneck":
        parts.append(config.inflate_style)
    parts.append("pool2" if config.with_pool2 else "no-pool2")
    parts.append(f"conv1 {'x'.join(map(str, config.conv1_kernel))}/t{config.conv1_stride_t}")
    parts.append("d" + "".join(map(str, config.dilations)))
    parts.append("s" + "".join(map(str, config.spatial_strides)))
    parts.append("t" + "".join(map(str, config.temporal_strides)))
    if any(any(stage) for stage in config.non_local):
        parts.append("nl " + "-".join("".join(str(b) for b in s) for s in config.non_local))
    if config.base_channels != 64:
        parts.append(f"w{config.base_channels}")
    return " ".join(parts)


def library_versions() -> dict[str, str]:
    """What produced a trial's numbers: the runners' versions (python, torch, CUDA, mmcv,
    mmengine) plus r3dnas, Optuna and fvcore."""
    from importlib.metadata import PackageNotFoundError, version

    from runners.latency import library_versions as runner_versions

    out = runner_versions()
    for dist in ("r3dnas", "optuna", "fvcore"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


class TrialRunner:
    """Runs trials of one study spec: identity, reuse, the :class:`Measure`, the record."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        tracker: StudyTracker | None = None,
        datasets: tuple[Dataset, Dataset] | None = None,
        runs_dir: str | Path | None = None,
        measure: Measure | None = None,
    ) -> None:
        """Args:
        datasets: ``(train, val)``, built once for every trial (default: built at the first).
        runs_dir: where trained weights go (default: the runs folder the study records,
            which ``launch``, ``ablate`` and workers set).
        measure: how a trial's metrics are obtained (default: :class:`TrainingMeasure`).
        """
        self.spec = spec
        self.tracker = tracker
        self.runs_dir = runs_dir
        self.measure: Measure = measure or _default_measure(spec, datasets)
        # NOTE: set by the run loop to show one quiet status line (trial, epoch, accuracy).
        self.status: Callable[[str], None] | None = None

    def training_signature(self, seed: int) -> str:
        """What besides the architecture decides a trial's metrics (for reuse)."""
        import hashlib
        import json

        raw = {k: self.spec.raw.get(k, {}) for k in ("data", "train", "measure")}
        # NOTE: which weights are kept does not change what is measured.
        raw["train"] = {k: v for k, v in raw["train"].items() if k != "keep_checkpoints"}
        raw["seed"] = seed
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:12]

    # ------------------------------------------------------------------ the trial
    def run(
        self,
        trial: optuna.Trial,
        *,
        config: ResNet3dConfig | None = None,
        seed: int | None = None,
        find_reusable: Callable[[str, str], FrozenTrial | None] | None = None,
    ) -> tuple[float, ...]:
        """Measure one trial and return its objective values; failures raise TrialFailure.

        Args:
            config: evaluate this config instead of sampling one (ablation grids).
            seed: training seed (default: the spec's).
            find_reusable: ``(digest, signature) -> FrozenTrial | None``; a hit is reused.
        """
        from optuna import TrialPruned

        seed = self.spec.train.seed if seed is None else seed
        timings: dict[str, float] = {}
        run: TrialRun | None = None
        # NOTE: lets an operator (and the crash-safety test) see which process runs a trial.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            config = self._identify(trial, config, seed, timings)
            run = self._open_run(trial, timings)
            digest, signature = trial.user_attrs["digest"], trial.user_attrs["signature"]
            earlier = find_reusable(digest, signature) if find_reusable is not None else None
            if earlier is not None:
                return self._reuse(trial, earlier, timings, run)
            return self._measure(trial, config, seed, timings, run)
        except (InfeasibleConfig, TrialFailure) as exc:
            infeasible = isinstance(exc, InfeasibleConfig | Infeasible)
            state: RunState = "infeasible" if infeasible else "failed"
            _finish(trial, run, state, timings=timings, reason=str(exc))
            if isinstance(exc, TrialFailure):
                raise
            raise Infeasible(str(exc)) from exc
        except R3dnasError as exc:  # e.g. a FLOPs mismatch: a failed trial, loudly
            reason = f"{type(exc).__name__}: {exc}"
            _finish(trial, run, "failed", timings=timings, reason=reason, run_reason=str(exc))
            raise TrialFailure(reason) from exc
        except TrialPruned as exc:
            _finish(trial, run, "pruned", timings=timings, reason=str(exc))
            raise
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl-C / SIGTERM)"
            _finish(trial, run, "failed", timings=None, reason=reason, run_reason="interrupted")
            raise

    def _identify(
        self,
        trial: optuna.Trial,
        config: ResNet3dConfig | None,
        seed: int,
        timings: dict[str, float],
    ) -> ResNet3dConfig:
        """Sample (unless given) and canonicalize the config; record who the trial is."""
        from search_space.canonical import canonicalize

        t0 = time.perf_counter()
        if config is None:
            config = self.spec.space.sample(trial)
        config = canonicalize(config)
        timings["sample_s"] = time.perf_counter() - t0
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("digest", config.digest())
        trial.set_user_attr("arch", readable_architecture(config))
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("signature", self.training_signature(seed))
        return config

    def _open_run(self, trial: optuna.Trial, timings: dict[str, float]) -> TrialRun | None:
        if self.tracker is None:
            return None
        t = time.perf_counter()
        run = self.tracker.trial_run(
            trial.number,
            config=trial.user_attrs["config"],
            params=dict(trial.params),
            spec=self.spec.raw,
        )
        timings["wandb_s"] = time.perf_counter() - t
        return run

    def _reuse(
        self,
        trial: optuna.Trial,
        earlier: FrozenTrial,
        timings: dict[str, float],
        run: TrialRun | None,
    ) -> tuple[float, ...]:
        """Record the metrics of an earlier trial with the same digest and signature."""
        names = self.spec.objective_names
        metrics = {k: earlier.user_attrs[k] for k in names}
        for key in REUSED_ATTRS:
            if key in earlier.user_attrs:
                trial.set_user_attr(key, earlier.user_attrs[key])
        check_constraints(trial, self.spec.constraints, dict(earlier.user_attrs))
        trial.set_user_attr("state", "reused")
        trial.set_user_attr("reused_from", earlier.number)
        trial.set_user_attr("timings", timings)
        weights = earlier.user_attrs.get("checkpoint")
        if weights:
            trial.set_user_attr("checkpoint", weights)
        if run is not None:
            run.finish(state="reused", summary=metrics, reason=None)
        values = tuple(float(metrics[k]) for k in names)
        self._keep_front(trial, values, weights)
        return values

    def _measure(
        self,
        trial: optuna.Trial,
        config: ResNet3dConfig,
        seed: int,
        timings: dict[str, float],
        run: TrialRun | None,
    ) -> tuple[float, ...]:
        """Obtain the metrics from :attr:`measure` and record them with the trial complete."""
        weights = None
        # NOTE: a tabular trial trains nothing, so it has no weights to keep.
        if self.spec.keep_checkpoints != "none" and self.spec.study.table is None:
            from studies.checkpoints import checkpoint_relpath

            digest, signature = trial.user_attrs["digest"], trial.user_attrs["signature"]
            weights = checkpoint_relpath(trial.study.study_name, digest, signature)
        metrics = self.measure(
            trial, config, seed=seed, timings=timings, on_epoch=self._epoch_hook(trial, run),
            checkpoint=None if weights is None else self._runs_dir(trial) / weights,
        )  # fmt: skip
        if weights is not None:
            trial.set_user_attr("checkpoint", weights)
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("state", "complete")
        trial.set_user_attr("timings", timings)
        trial.set_user_attr("versions", library_versions())
        if run is not None:
            t = time.perf_counter()
            run.finish(state="complete", summary=metrics, reason=None)
            timings["wandb_s"] = timings.get("wandb_s", 0.0) + time.perf_counter() - t
            trial.set_user_attr("timings", timings)
        values = tuple(float(metrics[k]) for k in self.spec.objective_names)
        self._keep_front(trial, values, weights)
        return values

    def _epoch_hook(self, trial: optuna.Trial, run: TrialRun | None) -> EpochHook:
        """After each epoch: log it, show it, and let the pruner stop the trial."""
        from studies.pruning import build_stopper

        spec = self.spec
        prune_on = f"val_{spec.objective_names[0]}" if spec.study.pruner == "median" else None
        # NOTE: multi-objective early stopping (Optuna refuses trial.report there): the stopper
        # reads the shared storage; the curve is the trial's own, as the measure recorded it.
        stopper = build_stopper(spec)
        curve: list[float] = []

        def on_epoch(epoch: int, values: dict[str, Any]) -> None:
            if run is not None:
                run.log_epoch(epoch, values)
            if self.status is not None:
                accuracy = values.get("val_top1")
                shown = "" if accuracy is None else f" val_top1 {accuracy:.1f}"
                self.status(f"trial {trial.number} epoch {epoch}/{spec.train.epochs}{shown}")
            if prune_on is not None and values.get(prune_on) is not None:
                import optuna

                trial.report(float(values[prune_on]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"pruned at epoch {epoch}: {prune_on} {values[prune_on]:.4g}"
                    )
            if stopper is not None and values.get("val_top1") is not None:
                curve.append(float(values["val_top1"]))
                reason = stopper(trial, epoch, curve)
                if reason is not None:
                    import optuna

                    raise optuna.TrialPruned(reason)

        return on_epoch

    def _runs_dir(self, trial: optuna.Trial) -> Path:
        if self.runs_dir is not None:
            return Path(self.runs_dir)
        return Path(trial.study.user_attrs.get("runs_dir", "runs"))

    def _keep_front(
        self, trial: optuna.Trial, values: tuple[float, ...], weights: str | None
    ) -> None:
        """``keep_checkpoints = "front"``: delete the weights that fell off the front.

        A file that cannot be deleted is logged, not fatal: the trial itself has completed.
        """
        if self.spec.keep_checkpoints != "front":
            return
        from studies.checkpoints import prune_off_front

        try:
            prune_off_front(
                trial.study,
                runs_dir=self._runs_dir(trial),
                current=(trial.number, values, weights),
            )
        except OSError as exc:
            _log.warning("pruning checkpoints off the front: %s", exc)


def _finish(
    trial: optuna.Trial,
    run: TrialRun | None,
    state: RunState,
    *,
    timings: dict[str, float] | None,
    reason: str,
    run_reason: str | None = None,
) -> None:
    """Record a trial that did not complete: its state, why, and its wandb run."""
    trial.set_user_attr("state", state)
    trial.set_user_attr("fail_reason", reason)
    if timings is not None:
        trial.set_user_attr("timings", timings)
    if run is not None:
        run.finish(state=state, summary={}, reason=reason if run_reason is None else run_reason)


def _default_measure(spec: StudySpec, datasets: tuple[Dataset, Dataset] | None) -> Measure:
    """Training, or a table lookup when the spec names a benchmark table (tabular mode)."""
    if spec.study.table is not None:
        from studies.tabular_mode import TableMeasure

        return TableMeasure(spec)
    return TrainingMeasure(spec, datasets=datasets)
