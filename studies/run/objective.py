"""One trial, end to end: sample -> identity -> reuse or measure -> record.

:class:`TrialRunner` does the bookkeeping of a trial; how its metrics are obtained is one
replaceable step, a :class:`~studies.run.measure.Measure` (default: the real one,
:class:`~studies.run.measure.TrainingMeasure`). Every trial records, as user attributes:

* ``about``: one line a person reads first, the first attribute in optuna-dashboard and
  ``trial.user_attrs`` (RDB storages list attributes by name, journals in the order written;
  ``about`` comes first both ways): ``complete``, ``reused trial 3 (same network and
  training)``, ``infeasible: gflops 3.1 > max 2``, ``failed: ...``, ``pruned at epoch 2: ...``;
* ``state``: complete | reused | infeasible | failed | pruned (``fail_reason`` says why);
* its identity: ``config`` (canonical ``ResNet3dConfig`` as a dict), ``digest`` (12 hex),
  ``arch`` (one readable line), ``seed``, ``signature`` (what else decides its metrics);
* its metrics, ``timings`` (seconds per phase), ``versions``, ``device``, and ``checkpoint``
  (trained weights relative to the runs folder, see :mod:`studies.results.checkpoints`).

A **reused** trial (the sampler proposed a network already measured with the same training)
copies the earlier trial's metrics into its attributes and ends PRUNED in Optuna's terms: it
measured nothing, and Optuna, its samplers and optuna-dashboard then see each network once, so
the dashboard's Pareto front is ``r3dnas pareto``'s. The run loop counts it toward ``n_trials``
like a completed trial (:func:`studies.run.budget.is_completed`).

An **infeasible** trial (a broken budget, or a network too small for the input) fails with its
constraint values where Optuna keeps them (``trial.set_constraint``; a network that cannot run
gets ``input_shape = 1``) and, for optuna-dashboard 0.21, which reads only Optuna's older list
form, as that list too.

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

from search_space.config import readable_architecture
from search_space.errors import R3dnasError, TrialFailure
from search_space.space import InfeasibleConfig
from studies.run.interrupts import raise_if_interrupted
from studies.run.measure import (
    EpochHook,
    Infeasible,
    Measure,
    MeasureRequest,
    TrainingMeasure,
    check_constraints,
)
from studies.run.pruning import build_stopper, stop_again
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    from torch.utils.data import Dataset

    from search_space.config import ResNet3dConfig
    from studies.study.sections import StudySpec
    from studies.tracking.tracker import StudyTracker, TrialRun
    from studies.tracking.tracker import TrialState as RunState

__all__ = ["SUMMARY_KEYS", "TrialRunner", "library_versions"]

_log = logging.getLogger(__name__)

# Attributes a reused trial copies from the earlier trial it reuses (besides the objectives).
REUSED_ATTRS = ("gflops", "params", "params_m", "latency_ms", "top1", "top5", "amp",
                "train_device", "skipped_videos", "latency_pred_ms", "latency_table")  # fmt: skip
# The metrics every trial's wandb run summary holds (None when the trial has no such value), so
# measured, reused and infeasible runs line up in one table.
SUMMARY_KEYS = ("top1", "top5", "gflops", "params", "params_m", "latency_ms", "latency_p90_ms",
                "throughput_clips_s", "latency_pred_ms")  # fmt: skip


def library_versions() -> dict[str, str]:
    """What produced a trial's numbers: the runners' versions (python, torch, CUDA, mmcv,
    mmengine) plus r3dnas, Optuna and fvcore."""
    from importlib.metadata import PackageNotFoundError, version

    from runners.latency.measure import library_versions as runner_versions

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
        self.stopper = build_stopper(spec)
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
        # NOTE: written first and named to sort first: the first attribute a person sees.
        trial.set_user_attr("about", "running")
        # NOTE: lets an operator (and the crash-safety test) see which process runs a trial.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            config = self._identify(trial, config, seed, timings)
            run = self._open_run(trial, timings)
            digest, signature = trial.user_attrs["digest"], trial.user_attrs["signature"]
            earlier = find_reusable(digest, signature) if find_reusable is not None else None
            if earlier is not None and earlier.user_attrs.get("state") == "pruned":
                self._stop_again(trial, earlier)
                earlier = None  # not stopped again: train it
            if earlier is None:
                return self._measure(trial, config, seed, timings, run)
            self._reuse(trial, earlier, timings, run)
        except (InfeasibleConfig, TrialFailure) as exc:
            infeasible = isinstance(exc, InfeasibleConfig | Infeasible)
            state: RunState = "infeasible" if infeasible else "failed"
            if isinstance(exc, InfeasibleConfig):
                trial.set_constraint("input_shape", 1.0)  # NOTE: no network to measure at all
            if infeasible:
                _list_constraints(trial)
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
        # NOTE: outside the try: this TrialPruned is the reuse, not a pruner's verdict.
        raise TrialPruned(trial.user_attrs["about"])

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

    def _stop_again(self, trial: optuna.Trial, earlier: FrozenTrial) -> None:
        """Raise ``TrialPruned`` (zero epochs) when the pruner, judging the curve ``earlier``
        recorded for the same network and training, would stop it again now: training is
        deterministic, so it would only run those epochs again to be stopped again."""
        from optuna import TrialPruned

        if self.stopper is None:
            return
        reason = stop_again(self.stopper, trial, earlier)
        if reason is not None:
            trial.set_user_attr("stopped_from", earlier.number)
            raise TrialPruned(reason)

    def _reuse(
        self,
        trial: optuna.Trial,
        earlier: FrozenTrial,
        timings: dict[str, float],
        run: TrialRun | None,
    ) -> None:
        """Record the metrics of an earlier trial with the same digest and signature (the
        caller then ends the trial PRUNED, see the module docstring)."""
        names = self.spec.objective_names
        for key in (*names, *REUSED_ATTRS):
            if key in earlier.user_attrs:
                trial.set_user_attr(key, earlier.user_attrs[key])
        check_constraints(trial, self.spec.constraints, dict(earlier.user_attrs))
        trial.set_user_attr("state", "reused")
        trial.set_user_attr("reused_from", earlier.number)
        trial.set_user_attr("timings", timings)
        weights = earlier.user_attrs.get("checkpoint")
        if weights:
            trial.set_user_attr("checkpoint", weights)
        outcome = f"reused trial {earlier.number} (same network and training)"
        trial.set_user_attr("about", outcome)
        if run is not None:
            summary = _summary(names, earlier.user_attrs) | {"reused_from": earlier.number}
            run.finish(state="reused", summary=summary, reason=outcome)

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
            from studies.results.checkpoints import checkpoint_relpath

            digest, signature = trial.user_attrs["digest"], trial.user_attrs["signature"]
            weights = checkpoint_relpath(trial.study.study_name, digest, signature)
        request = MeasureRequest(
            trial=trial, config=config, seed=seed, timings=timings,
            on_epoch=self._epoch_hook(trial, run),
            checkpoint=None if weights is None else self._runs_dir(trial) / weights,
        )  # fmt: skip
        metrics = self.measure(request)
        if weights is not None:
            trial.set_user_attr("checkpoint", weights)
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("state", "complete")
        trial.set_user_attr("about", "complete")
        trial.set_user_attr("timings", timings)
        versions = library_versions()
        if not timings.get("simulated"):  # NOTE: trained here: the setup decides bit-identity
            from studies.core.reproducibility import training_setup

            versions |= training_setup(self.spec.train.num_threads)
        trial.set_user_attr("versions", versions)
        if run is not None:
            t = time.perf_counter()
            summary = _summary(self.spec.objective_names, metrics) | metrics
            run.finish(state="complete", summary=summary, reason=None)
            timings["wandb_s"] = timings.get("wandb_s", 0.0) + time.perf_counter() - t
            trial.set_user_attr("timings", timings)
        values = tuple(float(metrics[k]) for k in self.spec.objective_names)
        self._keep_front(trial, values, weights)
        return values

    def _epoch_hook(self, trial: optuna.Trial, run: TrialRun | None) -> EpochHook:
        """After each epoch: log it, show it, and let the pruner stop the trial."""
        spec = self.spec
        # NOTE: Optuna refuses trial.report in multi-objective studies (its issue #3450); a
        # single-objective study reports every epoch, so the dashboard draws the curves.
        single = len(spec.objective_names) == 1
        report_on = f"val_{spec.objective_names[0]}" if single else None
        prune = spec.study.pruner == "median"
        # NOTE: multi-objective early stopping (Optuna refuses trial.report there): the stopper
        # reads the shared storage; the curve is the trial's own, as the measure recorded it.
        stopper = self.stopper
        curve: list[float] = []

        def on_epoch(epoch: int, values: dict[str, Any]) -> None:
            raise_if_interrupted()  # an interrupt a library swallowed ends the trial here
            if run is not None:
                run.log_epoch(epoch, values)
            if self.status is not None:
                accuracy = values.get("val_top1")
                shown = "" if accuracy is None else f" val_top1 {accuracy:.1f}"
                self.status(f"trial {trial.number} epoch {epoch}/{spec.train.epochs}{shown}")
            if report_on is not None and values.get(report_on) is not None:
                import optuna

                trial.report(float(values[report_on]), epoch)
                if prune and trial.should_prune():
                    raise optuna.TrialPruned(
                        f"pruned at epoch {epoch}: {report_on} {values[report_on]:.4g}"
                    )
            if stopper is not None and values.get("val_top1") is not None:
                curve.append(float(values["val_top1"]))
                reason = stopper(trial, epoch, curve)
                if reason is not None:
                    import optuna

                    raise optuna.TrialPruned(reason)

        return on_epoch

    def _runs_dir(self, trial: optuna.Trial) -> Path:
        return StudyRecord(trial.study).runs_dir_or(self.runs_dir)

    def _keep_front(
        self, trial: optuna.Trial, values: tuple[float, ...], weights: str | None
    ) -> None:
        """``keep_checkpoints = "front"``: delete the weights that fell off the front.

        A file that cannot be deleted is logged, not fatal: the trial itself has completed.
        """
        if self.spec.keep_checkpoints != "front":
            return
        from studies.results.checkpoints import prune_off_front

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
    """Record a trial that did not complete: its state, why, and its wandb run (with the
    summary keys of a measured trial, None where nothing was measured)."""
    trial.set_user_attr("state", state)
    trial.set_user_attr("fail_reason", reason)
    trial.set_user_attr(
        "about", _short(reason if reason.startswith(state) else f"{state}: {reason}")
    )
    if timings is not None:
        trial.set_user_attr("timings", timings)
    if run is not None:
        names = tuple(StudyRecord(trial.study).recorded_objectives or ())
        summary = _summary(names, trial.user_attrs)
        run.finish(
            state=state, summary=summary, reason=reason if run_reason is None else run_reason
        )


def _short(text: str, limit: int = 160) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    line = text.splitlines()[0] if text else text
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _summary(objectives: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    """The summary keys every trial's wandb run has: the objectives and :data:`SUMMARY_KEYS`."""
    keys = dict.fromkeys((*objectives, *SUMMARY_KEYS))
    return {k: values.get(k) for k in keys}


def _list_constraints(trial: optuna.Trial) -> None:
    """Also store the trial's constraint values as Optuna's older list (system attribute
    ``constraints``), the only form optuna-dashboard 0.21 shows.

    NOTE: Optuna has no public way to write a running trial's system attribute;
    ``trial.storage`` is public, the trial id is not.
    """
    values = list(trial.constraints.values())
    if values:
        trial.storage.set_trial_system_attr(trial._trial_id, "constraints", values)


def _default_measure(spec: StudySpec, datasets: tuple[Dataset, Dataset] | None) -> Measure:
    """Training, or a table lookup when the spec names a benchmark table (tabular mode)."""
    if spec.study.table is not None:
        from studies.run.tabular_mode import TableMeasure

        return TableMeasure(spec)
    return TrainingMeasure(spec, datasets=datasets)
