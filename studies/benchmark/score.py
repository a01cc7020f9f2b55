"""Rank a study's architectures by training-free scores, and pick candidates guided by them.

``r3dnas score SPEC`` scores every distinct architecture of the spec's space (or a random
sample of a large one) at initialisation on one batch of the spec's own training data (the
built-in generated data, or the study's videos), and prints them ranked::

    r3dnas score bench_table --scores synflow,naswot --top 10 --out scores.csv

Python: :func:`score_space` returns a :class:`ScoreResult`; :func:`guided_picks` is the
score-guided candidate selection that search benchmarks compare with plain random sampling.
The scores themselves are :mod:`runners.scores.training_free`.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import ConfigError
from studies.core.dominance import non_dominated

if TYPE_CHECKING:
    from search_space.config import ResNet3dConfig
    from search_space.space import SearchSpace
    from studies.study.sections import StudySpec

__all__ = [
    "ScoreResult",
    "ScoredArchitecture",
    "enqueue_guided",
    "enumerate_architectures",
    "guided_picks",
    "score_batch",
    "score_space",
]

_ENUMERATION_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class ScoredArchitecture:
    """One architecture with its cost (backbone, the space's input shape) and its scores.

    ``factors`` are the space's parameters that build it (the first grid point that does):
    what ``study.enqueue_trial`` takes.
    """

    digest: str
    arch: str
    factors: dict[str, Any]
    config: dict[str, Any]
    params: int
    gflops: float
    scores: dict[str, float]
    seconds: float  # wall time of all its scores (model build included)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The scored architectures, in the order they were scored."""

    space: str
    score_names: tuple[str, ...]
    batch_shape: tuple[int, ...]
    rows: tuple[ScoredArchitecture, ...]
    total_architectures: int
    wall_s: float
    seed: int

    def ranked(self, by: str | None = None) -> list[ScoredArchitecture]:
        """Rows best first by score ``by`` (default the first); NaN last."""
        name = by or self.score_names[0]
        if name not in self.score_names:
            raise ConfigError(
                f"rank by: {name!r} was not computed; computed: {', '.join(self.score_names)}"
            )

        def key(row: ScoredArchitecture) -> float:
            value = row.scores[name]
            return -math.inf if math.isnan(value) else value

        return sorted(self.rows, key=key, reverse=True)

    def format(self, *, by: str | None = None, top: int | None = None) -> str:
        """A text table, best first, with the rank under every score."""
        ranked = self.ranked(by)
        ranks = {name: _ranks([r.scores[name] for r in self.rows]) for name in self.score_names}
        position = {row.digest: i for i, row in enumerate(self.rows)}
        header = ["rank", "digest", *self.score_names, "params", "gflops", "arch"]
        lines = []
        for rank, row in enumerate(ranked[:top] if top else ranked, start=1):
            cells = [str(rank), row.digest]
            for name in self.score_names:
                cells.append(f"{row.scores[name]:.5g} (#{ranks[name][position[row.digest]]})")
            cells += [str(row.params), f"{row.gflops:.4g}", row.arch]
            lines.append(cells)
        widths = [max(len(c[i]) for c in [header, *lines]) for i in range(len(header) - 1)]
        out = [
            "  ".join([*(h.ljust(w) for h, w in zip(header, widths, strict=False)), header[-1]])
        ]
        for cells in lines:
            out.append(
                "  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=False)), cells[-1]])
            )
        sampled = (
            f"a sample of {len(self.rows)} of {self.total_architectures}"
            if len(self.rows) < self.total_architectures
            else f"all {len(self.rows)}"
        )
        out.append(
            f"{sampled} architectures of space {self.space!r} ranked by "
            f"{by or self.score_names[0]} (batch {'x'.join(map(str, self.batch_shape))}, "
            f"seed {self.seed}) in {self.wall_s:.1f} s"
        )
        return "\n".join(out)

    def write_csv(self, path: str | Path) -> Path:
        """One row per architecture: digest, arch, params, gflops, seconds, a column per score,
        the config and the factors as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["digest", "arch", "params", "gflops", "seconds",
                             *self.score_names, "config", "factors"])  # fmt: skip
            for row in self.rows:
                writer.writerow([
                    row.digest, row.arch, row.params, repr(row.gflops), f"{row.seconds:.4f}",
                    *(repr(row.scores[n]) for n in self.score_names),
                    json.dumps(row.config, sort_keys=True), json.dumps(row.factors),
                ])  # fmt: skip
        return path


def _ranks(values: Sequence[float]) -> list[int]:
    """1 = highest; NaN ranks last."""
    order = sorted(
        range(len(values)),
        key=lambda i: -math.inf if math.isnan(values[i]) else values[i],
        reverse=True,
    )
    ranks = [0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def enumerate_architectures(
    space: SearchSpace, *, sample: int | None = None, seed: int = 0
) -> tuple[list[tuple[dict[str, Any], ResNet3dConfig]], int]:
    """``(factors, config)`` of the distinct feasible architectures of ``space`` (the first
    grid point of each digest) and how many the space has; with ``sample``, a seeded uniform
    sample of that many of them.

    A space with more than 100,000 combinations is not enumerated: it needs ``sample``, and
    is then sampled by random parameters (its total is reported as -1, unknown).
    """
    from search_space.space import InfeasibleConfig

    combinations = math.prod(len(d.values) for d in space.choices)
    rng = random.Random(seed)
    if combinations > _ENUMERATION_LIMIT:
        if sample is None:
            raise ConfigError(
                f"the space has {combinations} combinations, too many to score them all; "
                "pass --sample N"
            )
        found: dict[str, tuple[dict[str, Any], ResNet3dConfig]] = {}
        for _ in range(sample * 50):
            params = {d.name: rng.choice(d.values) for d in space.choices}
            try:
                config = space.config_from_params(params)
            except InfeasibleConfig:
                continue
            found.setdefault(config.digest(), (params, config))
            if len(found) == sample:
                break
        return list(found.values()), -1
    configs = list(space.architectures(limit=_ENUMERATION_LIMIT).values())
    total = len(configs)
    if sample is not None and sample < total:
        configs = rng.sample(configs, sample)
    return configs, total


def score_batch(spec: StudySpec, *, batch_size: int | None = None) -> tuple[Any, Any]:
    """``(clips, labels)``: the first shuffled batch of the spec's own training set.

    Seeded by ``[train] seed``; ``batch_size`` defaults to ``[train] batch_size``.
    """
    from runners.data.datasets import build_datasets, build_loader

    train_set, _ = build_datasets(spec.data)
    loader = build_loader(
        train_set,
        batch_size=batch_size or spec.train.batch_size,
        shuffle=True,
        num_workers=0,
        seed=spec.train.seed,
    )
    clips, labels = next(iter(loader))
    return clips, labels


def score_space(
    spec: StudySpec,
    *,
    scores: Sequence[str] | str = "all",
    sample: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    threads: int | None = 1,
    progress: bool = True,
) -> ScoreResult:
    """Score every distinct architecture of ``spec.space`` (or ``sample`` of them).

    Every network is initialised from ``seed`` (default ``[train] seed``) with the spec's head
    (``[data] num_classes``) and scored on the same batch (:func:`score_batch`). ``threads``
    sets torch's CPU threads for the call (restored afterwards).
    """
    import torch
    from tqdm import tqdm

    from runners.scores.training_free import build_scoring_model, get_score, parse_score_names
    from search_space.config import readable_architecture
    from search_space.cost import cost

    names = parse_score_names(scores)
    functions = {name: get_score(name) for name in names}
    seed = spec.train.seed if seed is None else seed
    start = time.perf_counter()
    configs, total = enumerate_architectures(spec.space, sample=sample, seed=seed)
    batch = score_batch(spec, batch_size=batch_size)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows: list[ScoredArchitecture] = []
    try:
        for factors, config in tqdm(configs, desc="score", unit="net", disable=not progress):
            t = time.perf_counter()
            model = build_scoring_model(config, num_classes=spec.data.num_classes, seed=seed)
            values = {name: fn(model, batch) for name, fn in functions.items()}
            analytic = cost(config, spec.space.input_shape)
            rows.append(
                ScoredArchitecture(
                    digest=config.digest(),
                    arch=readable_architecture(config),
                    factors=factors,
                    config=config.to_dict(),
                    params=analytic.params,
                    gflops=analytic.gflops,
                    scores=values,
                    seconds=time.perf_counter() - t,
                )
            )
    finally:
        torch.set_num_threads(previous_threads)
    return ScoreResult(
        space=spec.space.name,
        score_names=names,
        batch_shape=tuple(batch[0].shape),
        rows=tuple(rows),
        total_architectures=total if total >= 0 else len(rows),
        wall_s=time.perf_counter() - start,
        seed=seed,
    )


# ---------------------------------------------------------------------- score-guided search
def guided_picks(
    candidates: Sequence[str],
    *,
    score: Mapping[str, float],
    costs: Mapping[str, Sequence[float]] | None = None,
    n: int,
    pool: int,
    seed: int,
    evaluate: Callable[[str], None] | None = None,
) -> list[str]:
    """Which ``n`` of ``candidates`` to train, in order, guided by a training-free score.

    Each pick draws ``pool`` candidates not yet picked, uniformly, and keeps one of those
    that no other of them dominates on (score, maximised; then each known cost, minimised:
    FLOPs and predicted latency cost nothing to know). Among the non-dominated it takes one
    at random. ``pool = 1`` is plain random sampling without replacement; a large pool with no
    costs is greedy by score. Including the costs keeps the picks spread along the cost axis,
    so a score that favours big networks does not spend the budget on one end of the front.

    ``evaluate`` (optional) is called with each pick as it is made, e.g. a table lookup.
    """
    if pool < 1:
        raise ConfigError(f"pool must be at least 1; got {pool}")
    if n < 0:
        raise ConfigError(f"n must be non-negative; got {n}")
    missing = [c for c in candidates if c not in score]
    if missing:
        raise ConfigError(f"score: no value for {len(missing)} candidate(s), e.g. {missing[0]}")
    rng = random.Random(seed)
    left = list(candidates)
    picks: list[str] = []
    while left and len(picks) < n:
        drawn = rng.sample(left, min(pool, len(left)))

        def point(c: str) -> list[float]:
            value = score[c]
            head = math.inf if math.isnan(value) else -value
            return [head, *((costs or {}).get(c, ()))]

        front = non_dominated([point(c) for c in drawn])
        choice = drawn[rng.choice(front)]
        left.remove(choice)
        picks.append(choice)
        if evaluate is not None:
            evaluate(choice)
    return picks


def enqueue_guided(
    study: Any,
    result: ScoreResult,
    *,
    score: str,
    n: int,
    pool: int,
    seed: int,
    costs: Sequence[str] = ("gflops",),
) -> list[ScoredArchitecture]:
    """Enqueue ``n`` score-guided picks (:func:`guided_picks`) of ``result`` into an Optuna
    ``study``: its next ``n`` trials train them, whatever its sampler (the picks' factors go
    to ``study.enqueue_trial``). ``costs`` are attributes of the rows, minimised."""
    if score not in result.score_names:
        raise ConfigError(
            f"score: {score!r} was not computed; computed: {', '.join(result.score_names)}"
        )
    rows = {row.digest: row for row in result.rows}
    picks = guided_picks(
        list(rows),
        score={d: r.scores[score] for d, r in rows.items()},
        costs={d: [float(getattr(r, c)) for c in costs] for d, r in rows.items()},
        n=n,
        pool=pool,
        seed=seed,
    )
    for digest in picks:
        study.enqueue_trial(rows[digest].factors, skip_if_exists=True)
    return [rows[d] for d in picks]
