"""Tabular mode: a trial's measurements read from a benchmark table instead of training.

Why: a search method is judged by running it many times over the same space; with a table of
every architecture already trained (:mod:`runners.scores.tabular`), a 100-trial study takes
seconds. It must be the code users run, so only *how the numbers are obtained* changes:
:class:`TableMeasure` is a :class:`~studies.run.measure.Measure` like the real one. The trial is
sampled, canonicalised, constrained, reported epoch by epoch through the same hook (so pruners
see the curve the real run produced), recorded and stored exactly as a measured one.

A simulated clock replaces the wall clock: the trial's ``timings["train_s"]`` is the stored
training time, scaled by the share of epochs it ran before a pruner stopped it, and
``timings["simulated"] = 1`` says so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from runners.scores.tabular import load_table
from search_space.errors import TrialFailure
from studies.run.measure import (
    EpochHook,
    Infeasible,
    MeasureRequest,
    check_constraints,
    record_known,
)

if TYPE_CHECKING:
    import optuna

    from runners.scores.tabular import TableRow
    from studies.study.sections import StudySpec

__all__ = ["TableMeasure"]


class TableMeasure:
    """Measures a trial by looking its architecture and seed up in ``spec.study.table``."""

    def __init__(self, spec: StudySpec) -> None:
        if spec.study.table is None:
            raise ValueError("TableMeasure needs a spec with [study] table")
        self.spec = spec
        self.table = load_table(spec.study.table)

    def __call__(self, request: MeasureRequest) -> dict[str, float]:
        """The row's metrics; its curve goes through ``on_epoch`` first (a pruner may stop it).

        Raises:
            TrialFailure: The architecture (or that seed of it) is not in the table, or an
                objective the table lacks (latency before its latency pass) is asked for.
            Infeasible: A constraint is broken (checked before the curve, as training would).
        """
        trial = request.trial
        row = self._row(request.config.digest(), request.seed)
        metrics = {
            "gflops": row.gflops,
            "params": row.params,
            "params_m": row.params_m,
        }
        if not math.isnan(row.latency_ms):
            metrics["latency_ms"] = row.latency_ms
        missing = [k for k in self.spec.objective_names if k not in metrics and "top" not in k]
        if missing:
            raise TrialFailure(
                f"the table {self.table.source} has no {', '.join(missing)} for architecture "
                f"{row.digest} (run r3dnas table latency before exporting it)"
            )
        violated = check_constraints(trial, self.spec.constraints, metrics)
        if violated:
            raise Infeasible("constraint violated before training: " + "; ".join(violated))
        trial.set_user_attr("table_row", {"digest": row.digest, "seed": row.seed})
        record_known(trial, metrics)
        self._replay(trial, row, request.timings, request.on_epoch)
        metrics["top1"] = row.top1
        metrics["top5"] = row.top5
        return metrics

    def _row(self, digest: str, seed: int) -> TableRow:
        row = self.table.lookup(digest, seed)
        if row is None:
            seeds = [s for s in self.table.seeds if self.table.lookup(digest, s) is not None]
            where = f"only seeds {seeds}" if seeds else "no row at all"
            raise TrialFailure(
                f"architecture {digest} seed {seed} is not in the table {self.table.source} "
                f"({where}; it covers {len(self.table.digests)} architectures)"
            )
        return row

    @staticmethod
    def _replay(
        trial: optuna.Trial, row: TableRow, timings: dict[str, float], on_epoch: EpochHook
    ) -> None:
        """Feed the stored curve epoch by epoch; charge the simulated clock for what ran."""
        epochs = max(row.epochs, 1)
        history: list[dict[str, float]] = []
        timings["simulated"] = 1.0
        for epoch, (top1, loss) in enumerate(zip(row.val_top1, row.train_loss, strict=True), 1):
            entry = {"epoch": float(epoch), "train_loss": loss, "val_top1": top1}
            history.append(entry)
            timings["train_s"] = row.train_s * epoch / epochs
            trial.set_user_attr("history", history)
            on_epoch(epoch, dict(entry))
