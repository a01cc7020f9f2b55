"""``r3dnas latency-table``: build a space's per-device latency table and say how good it is.

The table (``search_space.latency_model``) lets a study predict latency instead of measuring
it (``[measure] latency = "predicted"``), check ``max_latency_ms`` before building anything,
and target a device it does not run on: build the table there, copy the file, point
``latency_table`` at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runners.latency.measure import LatencyConfig
    from search_space.latency_model import LatencyTable

__all__ = ["format_table_summary", "latency_table"]


def latency_table(
    space: str,
    *,
    out: str | Path,
    latency: LatencyConfig,
    input_shape: str | None = None,
    calibrate: int = 10,
    seed: int = 0,
    include_head: bool = False,
    num_classes: int = 400,
    progress: bool = True,
) -> LatencyTable:
    """Measure every distinct layer of ``space`` (a shipped name or a TOML path) with
    ``latency``'s protocol and write the table to ``out`` (resuming a partial one measured under
    the same conditions)."""
    from runners.latency.table import build_latency_table
    from search_space.space import load_space

    return build_latency_table(
        load_space(space),
        latency,
        input_shape=input_shape,
        calibrate=calibrate,
        seed=seed,
        include_head=include_head,
        num_classes=num_classes,
        out=out,
        progress=(lambda line: print(line, flush=True)) if progress else None,
    )


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
