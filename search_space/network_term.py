"""The per-network term of the latency model, fitted on a few whole networks.

A table's layer times summed miss what a whole network adds or saves (framework overhead per
layer, cache effects across layers), so :class:`~search_space.latency_model.LatencyTable`
predicts ``a * sum(layer times) + b * len(layers) + c``. Which of those terms to fit, and their
values, are chosen here by leave-one-out cross-validation over networks measured whole on the
same device (:func:`fit_network_term` states the rule).

Pure Python (a least-squares solve of at most three unknowns); it imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search_space.errors import ConfigError

__all__ = ["NetworkTerm", "fit_network_term"]

_TERM_KINDS = ("sum", "offset", "affine", "affine_layers")


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkTerm:
    """``predicted = scale * layers_ms + per_layer_ms * n_layers + offset_ms``.

    ``kind`` is the model chosen by leave-one-out cross-validation on the calibration networks:
    ``sum`` (the layer sum alone), ``offset`` (+ a constant), ``affine`` (a scale and a
    constant) or ``affine_layers`` (+ a per-layer term). ``cv`` holds each candidate's
    leave-one-out fraction within ±10% and median absolute relative error.
    """

    kind: str = "sum"
    scale: float = 1.0
    per_layer_ms: float = 0.0
    offset_ms: float = 0.0
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: tuple[dict[str, Any], ...] = ()

    def apply(self, layers_ms: float, n_layers: int) -> float:
        return self.scale * layers_ms + self.per_layer_ms * n_layers + self.offset_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scale": self.scale,
            "per_layer_ms": self.per_layer_ms,
            "offset_ms": self.offset_ms,
            "cv": self.cv,
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkTerm:
        kind = data.get("kind", "sum")
        if kind not in _TERM_KINDS:
            raise ConfigError(
                f"network_term.kind must be one of {', '.join(_TERM_KINDS)}; got {kind!r}"
            )
        return cls(
            kind=kind,
            scale=float(data.get("scale", 1.0)),
            per_layer_ms=float(data.get("per_layer_ms", 0.0)),
            offset_ms=float(data.get("offset_ms", 0.0)),
            cv={k: dict(v) for k, v in dict(data.get("cv", {})).items()},
            calibration=tuple(dict(c) for c in data.get("calibration", ())),
        )


def _solve(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> list[float] | None:
    """Least squares by the normal equations (tiny systems); ``None`` when singular."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * t for r, t in zip(rows, targets, strict=True)) for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12 * max(1.0, max(abs(v) for v in a[col])):
            return None
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def _fit(kind: str, points: Sequence[tuple[float, int, float]]) -> tuple[float, float, float]:
    """(scale, per_layer, offset) minimising the squared *relative* error of ``points``
    (``layers_ms, n_layers, measured_ms``); falls back to a simpler model when singular."""
    if kind == "sum" or not points:
        return 1.0, 0.0, 0.0
    columns = {"offset": (2,), "affine": (0, 2), "affine_layers": (0, 1, 2)}[kind]
    rows, targets = [], []
    for s, n, m in points:
        features = (s, float(n), 1.0)
        # NOTE: divide each row by the measurement: least squares on relative error.
        rows.append([features[c] / m for c in columns])
        targets.append((m - (s if kind == "offset" else 0.0)) / m)
    solution = _solve(rows, targets)
    if solution is None:
        simpler = {"offset": "sum", "affine": "offset", "affine_layers": "affine"}[kind]
        return _fit(simpler, points)
    coef = [1.0 if kind == "offset" else 0.0, 0.0, 0.0]
    for c, value in zip(columns, solution, strict=True):
        coef[c] = value
    return coef[0], coef[1], coef[2]


def fit_network_term(
    points: Sequence[tuple[float, int, float]],
    *,
    calibration: Sequence[Mapping[str, Any]] = (),
) -> NetworkTerm:
    """Choose and fit the per-network term on calibration networks.

    Args:
        points: one ``(layers_ms, n_layers, measured_ms)`` per whole network measured.
        calibration: what to store beside the fit (digests, numbers), one per point.

    Every candidate (:class:`NetworkTerm`'s kinds, simplest first) is scored by leave-one-out
    cross-validation; the one with the most held-out predictions within ±10% wins (ties: the
    lower median error, then the simpler model). A kind needs more points than coefficients
    + 1 to be a candidate, so with no calibration the term is the plain sum.
    """
    needs = {"sum": 0, "offset": 2, "affine": 3, "affine_layers": 4}
    cv: dict[str, dict[str, float]] = {}
    best: tuple[float, float, int] | None = None
    chosen = "sum"
    for rank, kind in enumerate(_TERM_KINDS):
        if len(points) < needs[kind] + 1 and kind != "sum":
            continue
        errors = []
        for i, (s, n, m) in enumerate(points):
            held_in = [p for j, p in enumerate(points) if j != i]
            scale, per_layer, offset = _fit(kind, held_in)
            errors.append(abs(scale * s + per_layer * n + offset - m) / m)
        if not errors:
            continue
        within = sum(e <= 0.10 for e in errors) / len(errors)
        median = sorted(errors)[len(errors) // 2]
        cv[kind] = {"within_10pct": within, "median_abs_rel_error": median}
        score = (-within, median, rank)
        if best is None or score < best:
            best, chosen = score, kind
    scale, per_layer, offset = _fit(chosen, points)
    return NetworkTerm(
        kind=chosen,
        scale=scale,
        per_layer_ms=per_layer,
        offset_ms=offset,
        cv=cv,
        calibration=tuple(dict(c) for c in calibration),
    )
