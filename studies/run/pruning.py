"""Early stopping for multi-objective studies: stop a trial that cannot reach the front.

Optuna cannot prune a multi-objective trial (``trial.report`` is refused there). But in
architecture search the costs (GFLOPs, parameters, latency) are known before the first epoch;
only accuracy is uncertain. ``[study] pruner = "pareto"`` stops a trial when even an optimistic
final top-1 together with its known costs would be dominated by a trial already complete.

The bound (:func:`optimistic_top1`), after epoch ``e`` of ``E``::

    best top-1 so far + the largest gain any finished curve made from its own best at epoch e
    to its end + margin   (capped at 100)

It is the best case the study has seen, not a guess: a trial is stopped only if it would have to
improve more than every finished trial did, plus ``margin`` points, to escape domination. No
trial is stopped before ``n_startup_trials`` finished curves exist, nor at its last epoch (there
is nothing left to save).

``pruner = "moasha"`` is the baseline it is measured against: Syne Tune's MOASHA (Salinas et
al. 2021; Schmucker et al. 2021) in stopping mode, where every objective, costs included, is
compared only at rungs (:func:`moasha_rungs`) and a trial continues when its non-dominated-sort
position among the results recorded at that rung is in the top ``1 / reduction_factor``.

A network a pruner stopped may be sampled again. Trained again it would draw the same curve
(same seed, same data), so :func:`stop_again` judges the curve it recorded against the study as
it is now and stops it before training if it would be stopped again.

The pure rules (:func:`pareto_rule`, :func:`moasha_rule`) take numbers; the adapters
(:class:`ParetoStopper`, :class:`MoashaStopper`) read the shared Optuna storage at each epoch,
so every worker decides from the same trials. The epoch hook of
:class:`~studies.run.objective.TrialRunner` raises ``optuna.TrialPruned`` with the reason; the
trial is recorded pruned with its curve (``history``) and ``fail_reason``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from studies.core.dominance import dominates, sign

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from studies.study.sections import StudySpec

__all__ = [
    "EpochStopper",
    "MoashaStopper",
    "ParetoStopper",
    "StopDecision",
    "build_stopper",
    "moasha_rule",
    "moasha_rungs",
    "nondominated_order",
    "optimistic_top1",
    "pareto_rule",
    "stop_again",
]

# Syne Tune's MOASHA defaults: grace period 1 epoch, reduction factor 3.
MOASHA_REDUCTION_FACTOR = 3.0
MOASHA_GRACE_EPOCHS = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class StopDecision:
    """Whether to stop a trial now, and why (one line, recorded as its ``fail_reason``)."""

    stop: bool
    reason: str = ""
    bound: float | None = None  # the optimistic final top-1 (pareto rule), %


# ---------------------------------------------------------------------- the pareto rule
def optimistic_top1(
    curve: Sequence[float], finished: Sequence[Sequence[float]], *, margin: float
) -> tuple[float, float]:
    """``(bound, gain)``: the best plausible final top-1 (%) of a run whose validation top-1
    so far is ``curve``, and the largest gain that bound assumes.

    ``gain`` is the most any finished curve rose from its best over the same first epochs to
    its final value (0 when none rose). Measured from the best so far, not the last value, so a
    dip of a noisy curve does not lower the bound.
    """
    epoch = len(curve)
    gains = [c[-1] - max(c[:epoch]) for c in finished if len(c) >= epoch]
    gain = max([0.0, *gains])
    return min(100.0, max(curve) + gain + margin), gain


def pareto_rule(
    *,
    costs: Sequence[float],
    curve: Sequence[float],
    finished: Sequence[Sequence[float]],
    front: Sequence[tuple[int, float, Sequence[float]]],
    margin: float,
    min_finished: int,
    cost_names: Sequence[str] = (),
    cost_signs: Sequence[float] = (),
) -> StopDecision:
    """Stop when ``(optimistic top-1, costs)`` is dominated by a complete trial.

    Args:
        costs: the trial's known costs, each as a value to minimise.
        curve: its validation top-1 (%) after each epoch so far.
        finished: the validation curves of finished trials (full length).
        front: ``(trial number, final top-1, costs to minimise)`` of the complete feasible
            trials (the front and what it dominates; only the front can dominate first).
        margin: top-1 points added to the bound.
        min_finished: no decision before this many finished curves.
        cost_names, cost_signs: for the reason (a maximised cost was negated: sign -1).
    """
    if not curve or len(finished) < max(min_finished, 1):
        return StopDecision(stop=False)
    bound, gain = optimistic_top1(curve, finished, margin=margin)
    candidate = (-bound, *costs)
    # NOTE: the dominating trial named is the most accurate one, the easiest to check by eye.
    for number, top1, other in sorted(front, key=lambda f: -f[1]):
        if dominates((-top1, *other), candidate):
            signs = [*cost_signs, *[1.0] * (len(other) - len(cost_signs))]
            shown = ", ".join(
                f"{n} {s * v:.4g}" for n, s, v in zip(cost_names, signs, other, strict=False)
            )
            reason = (
                f"pruned at epoch {len(curve)}: its top1 can reach at most {bound:.1f} (best "
                f"{max(curve):.1f} + gain {gain:.1f} seen in {len(finished)} finished curves "
                f"+ margin {margin:g}), dominated by trial {number} (top1 {top1:.1f}"
                + (f", {shown})" if shown else ")")
            )
            return StopDecision(stop=True, reason=reason, bound=bound)
    return StopDecision(stop=False, bound=bound)


# ---------------------------------------------------------------------- MOASHA (baseline)
def moasha_rungs(
    max_epochs: int,
    *,
    grace_epochs: int = MOASHA_GRACE_EPOCHS,
    reduction_factor: float = MOASHA_REDUCTION_FACTOR,
) -> tuple[int, ...]:
    """Syne Tune's rung levels of one bracket: ``grace * rf**k`` below ``max_epochs``
    (``(1, 3)`` for 8 epochs with the defaults)."""
    count = int(math.log(max_epochs / grace_epochs) / math.log(reduction_factor) + 1)
    rungs = (round(grace_epochs * reduction_factor**k) for k in range(count))
    return tuple(r for r in rungs if r < max_epochs)


def _epsilon_net_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Farthest-point order of one front, seeded at the best first objective (Syne Tune)."""
    remaining = list(range(len(points)))
    first = min(remaining, key=lambda i: (points[i][0], i))
    order = [first]
    remaining.remove(first)
    while remaining:
        far = max(
            remaining, key=lambda i: (min(math.dist(points[i], points[j]) for j in order), -i)
        )
        order.append(far)
        remaining.remove(far)
    return order


def nondominated_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of ``points`` (minimised) best first: successive non-dominated fronts, each in
    epsilon-net order (Syne Tune's ``nondominated_sort``)."""
    remaining = list(range(len(points)))
    order: list[int] = []
    while remaining:
        front = [
            i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)
        ]
        order += [front[k] for k in _epsilon_net_order([points[i] for i in front])]
        remaining = [i for i in remaining if i not in front]
    return order


def moasha_rule(
    *,
    point: Sequence[float],
    recorded: Sequence[Sequence[float]],
    epoch: int,
    reduction_factor: float = MOASHA_REDUCTION_FACTOR,
) -> StopDecision:
    """MOASHA at a rung: continue when the trial's position in the non-dominated order of the
    results recorded at this rung (its own included) is in the top ``1 / reduction_factor``.

    NOTE: Syne Tune takes the *index list* of ``nondominated_sort`` as priorities, which ranks
    the new result by the index of whichever result sorts last; we rank it by its own position,
    which is what the paper describes.
    """
    if not recorded:
        return StopDecision(stop=False)
    points = [*recorded, point]
    position = nondominated_order(points).index(len(points) - 1)
    rank = position / len(points)
    if rank > 1 / reduction_factor:
        reason = (
            f"pruned at epoch {epoch} (MOASHA rung): non-dominated rank {position + 1} of "
            f"{len(points)} is outside the top 1/{reduction_factor:g}"
        )
        return StopDecision(stop=True, reason=reason)
    return StopDecision(stop=False)


# ---------------------------------------------------------------------- Optuna adapters
class EpochStopper(Protocol):
    """``(trial, epoch, val_top1 curve so far) -> reason to stop, or None``; it reads the
    trial's known costs (``cost_names``) from its user attributes."""

    cost_names: tuple[str, ...]

    def __call__(self, trial: optuna.Trial, epoch: int, curve: Sequence[float]) -> str | None: ...


def stop_again(stopper: EpochStopper, trial: optuna.Trial, earlier: FrozenTrial) -> str | None:
    """Why ``trial`` can be stopped before training, or None to train it.

    ``earlier`` is a trial of the same network and training that a pruner stopped. Training is
    deterministic (same seed, same data), so trained again the network would draw the same
    curve; the stopper judges that recorded curve, epoch by epoch, against the study as it is
    now (the front may have moved either way since). Copies the earlier trial's known costs onto
    ``trial`` first: they are what the stopper reads.
    """
    curve = _curve(earlier)
    known = {n: earlier.user_attrs[n] for n in stopper.cost_names if n in earlier.user_attrs}
    if not curve or len(known) < len(stopper.cost_names):
        return None
    for name, value in known.items():
        trial.set_user_attr(name, value)
    for epoch in range(1, len(curve) + 1):
        reason = stopper(trial, epoch, curve[:epoch])
        if reason is not None:
            return (
                f"pruned before training: trial {earlier.number} (same network and training) "
                f"ran {len(curve)} epochs and its curve is still stopped: {reason}"
            )
    return None


class _CostReader:
    """The spec's objectives split into top-1 and the costs known before training."""

    def __init__(self, spec: StudySpec) -> None:
        self.names = spec.objective_names
        self.top1_index = self.names.index("top1")
        self.cost_names = tuple(n for n in self.names if n != "top1")
        signs = {o.name: sign(o.direction) for o in spec.study.objectives}
        self.signs = tuple(signs[n] for n in self.cost_names)
        self.epochs = spec.train.epochs

    def costs(self, attrs: dict[str, Any]) -> tuple[float, ...] | None:
        """The costs recorded on a trial (minimised), or None while one is unknown."""
        out = []
        for name, factor in zip(self.cost_names, self.signs, strict=True):
            value = attrs.get(name)
            if value is None:
                return None
            out.append(factor * float(value))
        return tuple(out)


def _curve(trial: FrozenTrial) -> list[float]:
    return [float(h["val_top1"]) for h in trial.user_attrs.get("history", ()) if "val_top1" in h]


class ParetoStopper(_CostReader):
    """``pruner = "pareto"``: :func:`pareto_rule` over the complete trials in the storage."""

    def __init__(self, spec: StudySpec) -> None:
        super().__init__(spec)
        self.margin = spec.study.pruner_margin
        self.min_finished = spec.study.n_startup_trials

    def __call__(self, trial: optuna.Trial, epoch: int, curve: Sequence[float]) -> str | None:
        from optuna.trial import TrialState

        from studies.core.dominance import is_feasible

        if epoch >= self.epochs:
            return None
        costs = self.costs(trial.user_attrs)
        if costs is None:
            return None
        finished: list[list[float]] = []
        front: list[tuple[int, float, Sequence[float]]] = []
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            other = _curve(t)
            if len(other) >= self.epochs:
                finished.append(other)
            known = self.costs(t.user_attrs)
            if t.values is not None and known is not None and is_feasible(t):
                front.append((t.number, float(t.values[self.top1_index]), known))
        decision = pareto_rule(
            costs=costs, curve=curve, finished=finished, front=front, margin=self.margin,
            min_finished=self.min_finished, cost_names=self.cost_names, cost_signs=self.signs,
        )  # fmt: skip
        return decision.reason if decision.stop else None


class MoashaStopper(_CostReader):
    """``pruner = "moasha"``: :func:`moasha_rule` at each rung over every trial in the storage
    that reached it (any state: asynchronous successive halving keeps what was recorded)."""

    def __init__(self, spec: StudySpec) -> None:
        super().__init__(spec)
        self.rungs = moasha_rungs(self.epochs)

    def __call__(self, trial: optuna.Trial, epoch: int, curve: Sequence[float]) -> str | None:
        if epoch not in self.rungs:
            return None
        costs = self.costs(trial.user_attrs)
        if costs is None:
            return None
        recorded = []
        network = (trial.user_attrs.get("digest"), trial.user_attrs.get("signature"))
        for t in trial.study.get_trials(deepcopy=False):
            # NOTE: a network is ranked against other networks, not its own earlier record.
            if (t.user_attrs.get("digest"), t.user_attrs.get("signature")) == network:
                continue
            other, known = _curve(t), self.costs(t.user_attrs)
            if len(other) >= epoch and known is not None:
                recorded.append((-other[epoch - 1], *known))
        point = (-curve[epoch - 1], *costs)
        decision = moasha_rule(point=point, recorded=recorded, epoch=epoch)
        return decision.reason if decision.stop else None


def build_stopper(spec: StudySpec) -> EpochStopper | None:
    """The spec's multi-objective early stopping, or None (``median`` is Optuna's pruner)."""
    if spec.study.pruner == "pareto":
        return ParetoStopper(spec)
    if spec.study.pruner == "moasha":
        return MoashaStopper(spec)
    return None
