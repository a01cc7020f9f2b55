"""What ``r3dnas latency-table`` says about the table it built (the CLI calls
:func:`runners.latency.table.build_latency_table` itself, with the space and the flags).

The table (``search_space.latency_model``) lets a study predict latency instead of measuring
it (``[measure] latency = "predicted"``), check ``max_latency_ms`` before building anything,
and target a device it does not run on: build the table there, copy the file, point
``latency_table`` at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search_space.latency_model import LatencyTable

__all__ = ["format_table_summary"]


def format_table_summary(table: LatencyTable, path: str | Path) -> str:
    """What was built, and how the per-network term did in leave-one-out cross-validation."""
    term = table.network_term
    lines = [f"wrote {path}: {table.describe()}"]
    lines.append(
        f"per-network term: {term.kind} (scale {term.scale:.4g}, per layer "
        f"{term.per_layer_ms:.4g} ms, offset {term.offset_ms:.4g} ms) from "
        f"{len(term.calibration)} whole network(s)"
    )
    for kind, scores in term.cv.items():
        lines.append(
            f"  leave-one-out {kind:<14} within ±10%: {scores['within_10pct']:.0%}, "
            f"median |error| {scores['median_abs_rel_error']:.1%}"
        )
    return "\n".join(lines)
