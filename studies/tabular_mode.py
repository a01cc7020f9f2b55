"""Tabular mode: a trial's measurements read from a benchmark table instead of training.

Why: a search method is judged by running it many times over the same space; with a table of
every architecture already trained (:mod:`runners.tabular`), a 100-trial study takes seconds.
It must be the code users run, so only *how the numbers are obtained* changes: the trial is
sampled, canonicalised, constrained, reported epoch by epoch (so pruners see the same curve a
real run would have produced), recorded and stored exactly as a measured one. A simulated
clock replaces the wall clock: each trial's ``train_s`` is the stored training time, scaled by
the share of epochs it ran before a pruner stopped it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import TrialFailure

if TYPE_CHECKING:
    from runners.tabular import BenchmarkTable, TableRow

__all__ = ["TableMeasurement", "load_table", "measure_from_table"]

_TABLES: dict[tuple[str, float], BenchmarkTable] = {}


def load_table(path: str | Path) -> BenchmarkTable:
    """The table at ``path``, read once per process (and again if the file changes)."""
    from runners.tabular import BenchmarkTable

    resolved = Path(path).resolve()
    key = (str(resolved), resolved.stat().st_mtime if resolved.exists() else 0.0)
    if key not in _TABLES:
        _TABLES[key] = BenchmarkTable.load(resolved)
    return _TABLES[key]


@dataclass(frozen=True, slots=True)
class TableMeasurement:
    """What a trial records from its table row."""

    metrics: dict[str, float]
    history: list[dict[str, float]]
    train_s: float
    row: TableRow


def measure_from_table(
    table: BenchmarkTable,
    *,
    digest: str,
    seed: int,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> TableMeasurement:
    """The row of ``(digest, seed)`` as a finished training run.

    Every epoch of the stored curve goes through ``on_epoch`` in order, as
    ``train_and_evaluate`` would call it, so a pruner may stop the trial (its exception
    propagates, after the simulated time of the epochs run is known to the caller through
    the exception's ``simulated_train_s`` attribute).

    Raises:
        TrialFailure: The architecture (or that seed of it) is not in the table.
    """
    row = table.lookup(digest, seed)
    if row is None:
        seeds = [s for s in table.seeds if table.lookup(digest, s) is not None]
        where = f"only seeds {seeds}" if seeds else "no row at all"
        raise TrialFailure(
            f"architecture {digest} seed {seed} is not in the table {table.source} "
            f"({where}; the table covers {len(table.digests)} architectures)"
        )
    history: list[dict[str, float]] = []
    epochs = max(row.epochs, 1)
    for epoch, (top1, loss) in enumerate(zip(row.val_top1, row.train_loss, strict=True), 1):
        entry = {"epoch": float(epoch), "val_top1": top1, "train_loss": loss}
        history.append(entry)
        if on_epoch is not None:
            try:
                on_epoch(epoch, dict(entry))
            except BaseException as exc:
                # NOTE: the simulated clock charges the epochs that ran before the stop.
                exc.simulated_train_s = row.train_s * epoch / epochs  # type: ignore[attr-defined]
                raise
    metrics = {
        "top1": row.top1,
        "top5": row.top5,
        "gflops": row.gflops,
        "params": row.params,
        "params_m": row.params_m,
    }
    if not math.isnan(row.latency_ms):
        metrics["latency_ms"] = row.latency_ms
    return TableMeasurement(metrics=metrics, history=history, train_s=row.train_s, row=row)
