"""One trial, end to end: sample -> identity -> cost & constraints -> latency -> train -> FLOPs.

The order is chosen so that expensive work happens last: the analytic cost rejects
FLOP/parameter budgets before anything is built, and latency (seconds) is measured before
training (minutes), so a latency budget also never trains an infeasible network.

Everything needed to reproduce a trial is stored on it as user attributes (see
:data:`TRIAL_ATTRS`); the Optuna storage is the source of truth, wandb only a mirror.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space.errors import R3dnasError, TrialFailure
from search_space.space import InfeasibleConfig

__all__ = ["TRIAL_ATTRS", "TrialOutcome", "TrialRunner", "readable_architecture"]

# The user attributes every finished trial carries (metrics only when measured).
TRIAL_ATTRS = (
    "state",  # complete | reused | infeasible | failed
    "config",  # canonical ResNet3dConfig as a dict
    "digest",  # canonical 12-hex identity
    "arch",  # one-line readable architecture
    "seed",
    "timings",  # seconds per phase
    "versions",
    "device",
    "checkpoint",  # trained weights, relative to the runs folder (see studies.checkpoints)
)


class Infeasible(TrialFailure):
    """The configuration breaks a constraint or cannot run on the declared input shape."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TrialOutcome:
    values: tuple[float, ...]
    metrics: dict[str, float]
    attrs: dict[str, Any] = field(default_factory=dict)


def readable_architecture(config: Any) -> str:
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
    """Measures trials of one study spec; datasets are built once and shared by all trials."""

    def __init__(
        self,
        spec: Any,
        *,
        tracker: Any | None = None,
        progress: bool = False,
        datasets: tuple[Any, Any] | None = None,
        runs_dir: str | Path | None = None,
    ) -> None:
        """``runs_dir``: where trained weights go (default: the runs folder the study records,
        which ``launch``, ``ablate`` and workers set)."""
        self.spec = spec
        self.tracker = tracker
        self.progress = progress
        self.runs_dir = runs_dir
        # NOTE: set by the run loop to show one quiet status line (trial, epoch, accuracy).
        self.status: Callable[[str], None] | None = None
        self._datasets: tuple[Any, Any] | None = datasets
        if spec.measure.latency_isolation == "pause":
            from runners.quiet import register_worker

            # NOTE: a worker is paused while another worker on this machine times a network,
            # so latency does not depend on what else the study runs (runners.quiet).
            register_worker()

    # ------------------------------------------------------------------ helpers
    def datasets(self) -> tuple[Any, Any]:
        if self._datasets is None:
            from runners.data import build_datasets

            self._datasets = build_datasets(self.spec.data)
        return self._datasets

    def training_signature(self, seed: int) -> str:
        """What besides the architecture decides a trial's metrics (for reuse)."""
        import hashlib
        import json

        raw = {k: self.spec.raw.get(k, {}) for k in ("data", "train", "measure")}
        # NOTE: which weights are kept does not change what is measured.
        raw["train"] = {k: v for k, v in raw["train"].items() if k != "keep_checkpoints"}
        raw["seed"] = seed
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[
            :12
        ]

    def _constraints(self, trial: Any, measured: dict[str, float]) -> list[str]:
        """Record every constraint on the trial; return the violated ones as readable text."""
        c = self.spec.constraints
        violated = []
        pairs = (
            ("gflops", c.max_gflops, measured.get("gflops")),
            ("params_m", c.max_params_m, measured.get("params_m")),
            ("latency_ms", c.max_latency_ms, measured.get("latency_ms")),
        )
        for name, limit, value in pairs:
            if limit is None or value is None:
                continue
            trial.set_constraint(name, value - limit)
            if value > limit:
                violated.append(f"{name} {value:.4g} > max {limit:.4g}")
        return violated

    # ------------------------------------------------------------------ the trial
    def run(
        self,
        trial: Any,
        *,
        config: Any | None = None,
        seed: int | None = None,
        find_reusable: Callable[[str, str], Any] | None = None,
    ) -> tuple[float, ...]:
        """Measure one trial and return its objective values; failures raise TrialFailure.

        Args:
            config: evaluate this config instead of sampling one (ablation grids).
            seed: training seed (default: the spec's).
            find_reusable: ``(digest, signature) -> FrozenTrial | None``; a hit is reused.
        """
        spec = self.spec
        seed = spec.train.seed if seed is None else seed
        timings: dict[str, float] = {}
        attrs: dict[str, Any] = {"seed": seed, "versions": library_versions()}
        run = None
        t0 = time.perf_counter()
        # NOTE: lets an operator (and the crash-safety test) see which process runs a trial.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            if config is None:
                config = spec.space.sample(trial)
            from search_space.canonical import canonicalize

            config = canonicalize(config)
            timings["sample_s"] = time.perf_counter() - t0
            digest = config.digest()
            signature = self.training_signature(seed)
            attrs.update(
                config=config.to_dict(),
                digest=digest,
                arch=readable_architecture(config),
                signature=signature,
            )
            for key in ("config", "digest", "arch", "seed", "signature"):
                trial.set_user_attr(key, attrs[key])
            if self.tracker is not None:
                t = time.perf_counter()
                run = self.tracker.trial_run(
                    trial.number, config=attrs["config"], params=dict(trial.params), spec=spec.raw
                )
                timings["wandb_s"] = time.perf_counter() - t

            earlier = find_reusable(digest, signature) if find_reusable is not None else None
            if earlier is not None:
                metrics = {k: earlier.user_attrs[k] for k in spec.objective_names}
                for key in ("gflops", "params", "params_m", "latency_ms", "top1", "top5",
                            "amp", "train_device", "skipped_videos", "latency_pred_ms",
                            "latency_table"):  # fmt: skip
                    if key in earlier.user_attrs:
                        trial.set_user_attr(key, earlier.user_attrs[key])
                self._constraints(trial, dict(earlier.user_attrs))
                trial.set_user_attr("state", "reused")
                trial.set_user_attr("reused_from", earlier.number)
                trial.set_user_attr("timings", timings)
                weights = earlier.user_attrs.get("checkpoint")
                if weights:
                    trial.set_user_attr("checkpoint", weights)
                if run is not None:
                    run.finish(state="reused", summary=metrics, reason=None)
                values = tuple(float(metrics[k]) for k in spec.objective_names)
                self._keep_front(trial, values, weights)
                return values

            weights = None
            if spec.keep_checkpoints != "none":
                from studies.checkpoints import checkpoint_relpath

                weights = checkpoint_relpath(trial.study.study_name, digest, signature)
            metrics = self._measure(
                trial, config, seed, timings, run,
                checkpoint=None if weights is None else self._runs_dir(trial) / weights,
            )  # fmt: skip
            if weights is not None:
                trial.set_user_attr("checkpoint", weights)
            for key, value in metrics.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("state", "complete")
            trial.set_user_attr("timings", timings)
            trial.set_user_attr("versions", attrs["versions"])
            if run is not None:
                t = time.perf_counter()
                run.finish(state="complete", summary=metrics, reason=None)
                timings["wandb_s"] = timings.get("wandb_s", 0.0) + time.perf_counter() - t
                trial.set_user_attr("timings", timings)
            values = tuple(float(metrics[k]) for k in spec.objective_names)
            self._keep_front(trial, values, weights)
            return values
        except (InfeasibleConfig, TrialFailure) as exc:
            state = "infeasible" if isinstance(exc, InfeasibleConfig | Infeasible) else "failed"
            reason = str(exc)
            trial.set_user_attr("state", state)
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("timings", timings)
            if run is not None:
                run.finish(state=state, summary={}, reason=reason)
            if isinstance(exc, TrialFailure):
                raise
            raise Infeasible(reason) from exc
        except R3dnasError as exc:  # e.g. a FLOPs mismatch: a failed trial, loudly
            trial.set_user_attr("state", "failed")
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            trial.set_user_attr("timings", timings)
            if run is not None:
                run.finish(state="failed", summary={}, reason=str(exc))
            raise TrialFailure(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ != "TrialPruned":
                raise
            trial.set_user_attr("state", "pruned")
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr("timings", timings)
            if run is not None:
                run.finish(state="pruned", summary={}, reason=str(exc))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("state", "failed")
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C / SIGTERM)")
            if run is not None:
                run.finish(state="failed", summary={}, reason="interrupted")
            raise

    def _runs_dir(self, trial: Any) -> Path:
        if self.runs_dir is not None:
            return Path(self.runs_dir)
        return Path(trial.study.user_attrs.get("runs_dir", "runs"))

    def _keep_front(self, trial: Any, values: tuple[float, ...], weights: str | None) -> None:
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
            logging.getLogger(__name__).warning("pruning checkpoints off the front: %s", exc)

    def _predict_latency(
        self, trial: Any, config: Any, timings: dict[str, float]
    ) -> dict[str, float]:
        """Latency from the spec's table, checked against ``max_latency_ms`` before anything
        is built: ``latency_pred_ms``, and for ``latency = "predicted"`` also ``latency_ms``
        and ``throughput_clips_s`` (batch 1)."""
        from search_space.latency_model import predict_latency

        spec = self.spec
        t = time.perf_counter()
        table = spec.measure.load_latency_table()
        prediction = predict_latency(config, table, spec.measure.input_shape)
        timings["latency_pred_s"] = time.perf_counter() - t
        if prediction.missing:
            raise TrialFailure(
                f"latency table {spec.measure.latency_table} has no entry for "
                f"{len(prediction.missing)} layer(s) of this network, e.g. "
                f"{prediction.missing[0]!r}; rebuild it for this space and clip with "
                "`r3dnas latency-table`"
            )
        trial.set_user_attr(
            "latency_table",
            {"path": spec.measure.latency_table, "device": table.device,
             "threads": table.threads, "mode": table.mode},
        )  # fmt: skip
        metrics = {"latency_pred_ms": prediction.latency_ms}
        if spec.measure.latency == "predicted":
            metrics["latency_ms"] = prediction.latency_ms
            metrics["throughput_clips_s"] = 1000.0 / prediction.latency_ms
            trial.set_user_attr("device", table.device)
            trial.set_user_attr("latency_mode", table.mode)
        violated = self._constraints(trial, {"latency_ms": prediction.latency_ms})
        if violated:
            raise Infeasible("constraint violated before building (predicted): " + violated[0])
        return metrics

    def _measure(
        self,
        trial: Any,
        config: Any,
        seed: int,
        timings: dict[str, float],
        run: Any,
        *,
        checkpoint: Path | None = None,
    ) -> dict[str, float]:
        """Cost, latency, training and FLOPs; the trained weights go to ``checkpoint``."""
        from search_space.cost import cost

        spec = self.spec
        shape = spec.measure.input_shape
        t = time.perf_counter()
        analytic = cost(config, shape, include_head=spec.measure.include_head,
                        num_classes=spec.data.num_classes)  # fmt: skip
        timings["cost_s"] = time.perf_counter() - t
        metrics: dict[str, float] = {
            "gflops": analytic.gflops,
            "params": float(analytic.params),
            "params_m": analytic.params_m,
        }
        violated = self._constraints(trial, metrics)
        if violated:
            raise Infeasible("constraint violated before training: " + "; ".join(violated))

        source = spec.measure.latency
        if source != "measured":
            metrics.update(self._predict_latency(trial, config, timings))
        needs_latency = source != "predicted" and (
            spec.measure.measure_latency
            or "latency_ms" in spec.objective_names
            or spec.constraints.max_latency_ms is not None  # a budget needs its measurement
        )
        if needs_latency:
            from runners.latency import measure_latency

            t = time.perf_counter()
            latency = measure_latency(
                config,
                shape,
                spec.measure.latency_config(),
            )
            timings["latency_s"] = time.perf_counter() - t
            metrics["latency_ms"] = latency.median_ms
            metrics["latency_p90_ms"] = latency.p90_ms
            metrics["throughput_clips_s"] = latency.throughput_clips_s
            trial.set_user_attr("device", latency.device)
            trial.set_user_attr("latency_mode", latency.mode)
            violated = self._constraints(trial, {"latency_ms": latency.median_ms})
            if violated:
                raise Infeasible("constraint violated before training: " + "; ".join(violated))

        # NOTE: always trained, objective or not: every Pareto row shows top1.
        from runners.accuracy import train_and_evaluate

        train_set, val_set = self.datasets()
        train_cfg = dataclasses.replace(spec.train, seed=seed)

        prune_on = f"val_{spec.objective_names[0]}" if spec.study.pruner != "none" else None

        def on_epoch(epoch: int, values: dict[str, Any]) -> None:
            if run is not None:
                run.log_epoch(epoch, values)
            if self.status is not None:
                accuracy = values.get("val_top1")
                shown = "" if accuracy is None else f" val_top1 {accuracy:.1f}"
                self.status(f"trial {trial.number} epoch {epoch}/{train_cfg.epochs}{shown}")
            if prune_on is not None and values.get(prune_on) is not None:
                import optuna

                trial.report(float(values[prune_on]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"pruned at epoch {epoch}: {prune_on} {values[prune_on]:.4g}"
                    )

        t = time.perf_counter()
        result = train_and_evaluate(
            config,
            train_set,
            val_set,
            train_cfg,
            num_classes=spec.data.num_classes,
            num_workers=spec.data.num_workers,
            on_epoch=on_epoch,
            checkpoint_path=checkpoint,
        )
        timings["train_s"] = time.perf_counter() - t
        try:
            metrics["top1"] = result.top1
            metrics["top5"] = result.top5
            trial.set_user_attr("history", [dict(h) for h in result.history])
            trial.set_user_attr("peak_memory_mb", result.peak_memory_mb)
            # NOTE: what the export needs to say what was measured: the precision and device
            # the trial trained with ("auto" resolved), and the videos it skipped as unreadable.
            trial.set_user_attr("train_device", result.device)
            trial.set_user_attr("amp", result.amp)
            if hasattr(train_set, "skipped"):
                skipped = {"train": list(train_set.skipped), "val": list(val_set.skipped)}
                trial.set_user_attr("skipped_videos", skipped)
            if not math.isfinite(result.top1):
                raise TrialFailure(f"top1 is not finite: {result.top1}")

            from runners.flops import measure_flops

            t = time.perf_counter()
            flops = measure_flops(
                config, shape, include_head=spec.measure.include_head,
                num_classes=spec.data.num_classes,
            )  # fmt: skip
        except BaseException:
            # NOTE: a trial that fails after training (or is interrupted) keeps no weights.
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
            raise
        timings["flops_s"] = time.perf_counter() - t
        metrics["gflops"] = flops.gflops
        metrics["params"] = float(flops.params)
        return metrics
