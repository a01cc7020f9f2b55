"""Latencies the machine could not measure reliably are timed again, and flagged if they stay so.

Why: on a busy machine one trial recorded 62 ms where its neighbours took about 2.3 ms, with
stored p90s of 96-351 ms (issue 20): the number measured the machine, not the network, and
stored as is it set a study's hypervolume reference and its plot's colour scale. A measurement
is *unreliable* when

* its blocks disagree: ``cv_of_median`` above :data:`MAX_CV`;
* its samples spread: ``p90 / p10`` above :data:`MAX_SPREAD` (a quiet CPU gives well under 1.5);
* it is far off a prediction from a latency table: beyond :data:`MAX_OFF_PREDICTION` times or
  below its inverse.

:func:`measure_reliably` times again (up to ``attempts`` in all) and keeps the attempt with the
tightest spread, returning the reason when even that one is unreliable, so the caller records
the flag beside the number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runners.latency.measure import LatencyResult

__all__ = ["MAX_CV", "MAX_OFF_PREDICTION", "MAX_SPREAD", "measure_reliably", "unreliable"]

MAX_CV = 0.25
MAX_SPREAD = 3.0
MAX_OFF_PREDICTION = 3.0


def _spread(result: LatencyResult) -> float:
    p10 = result.p10_ms if result.p10_ms is not None else result.min_ms
    return result.p90_ms / p10 if p10 > 0 else math.inf


def unreliable(result: LatencyResult, *, predicted_ms: float | None = None) -> str | None:
    """Why ``result`` cannot be trusted as a measurement of the network, or None."""
    reasons = []
    if math.isfinite(result.cv_of_median) and result.cv_of_median > MAX_CV:
        reasons.append(f"blocks disagree (CV {result.cv_of_median:.0%} > {MAX_CV:.0%})")
    if _spread(result) > MAX_SPREAD:
        reasons.append(f"p90/p10 {_spread(result):.1f} > {MAX_SPREAD:g}")
    if predicted_ms is not None and predicted_ms > 0 and math.isfinite(predicted_ms):
        ratio = result.latency_ms / predicted_ms
        if not 1 / MAX_OFF_PREDICTION <= ratio <= MAX_OFF_PREDICTION:
            reasons.append(f"{ratio:.2g}x the predicted {predicted_ms:.3g} ms")
    return "; ".join(reasons) or None


def measure_reliably(
    measure: Callable[[], LatencyResult], *, attempts: int = 3, predicted_ms: float | None = None
) -> tuple[LatencyResult, str | None, int]:
    """``(result, reason, attempts made)``: ``measure()`` until :func:`unreliable` finds nothing
    or ``attempts`` are spent; then the attempt with the smallest ``p90 / p10`` and its reason
    (None when it is reliable)."""
    tried: list[tuple[LatencyResult, str | None]] = []
    for _ in range(max(1, attempts)):
        result = measure()
        reason = unreliable(result, predicted_ms=predicted_ms)
        tried.append((result, reason))
        if reason is None:
            return result, None, len(tried)
    best, reason = min(tried, key=lambda pair: _spread(pair[0]))
    return best, reason, len(tried)
