"""The networks a cost-aware search chooses from, with every cost known before training.

A candidate is one distinct network of the spec's space (one canonical digest) together with
the parameters :meth:`SearchSpace.sample` suggests for it: the conditional dimensions
(``inflate_style``) appear only where they shape the network, exactly as ``sample`` asks for
them, so a trial given these parameters as ``fixed_params`` builds this network and no other.

Costs are exact before training: GFLOPs and parameters from :func:`search_space.cost.cost`
(the counting rule the trials use), latency from the benchmark table in tabular mode or from the
spec's latency table when the study predicts latency (``[measure] latency = "predicted"`` or
``"both"``). Without either, latency is unknown here (NaN): the sampler then estimates it from
the trials that measured it (see :mod:`studies.sampling.sampler`).

Enumeration: every combination of choices when the space has at most :data:`ENUMERATION_LIMIT`
of them (the shipped spaces: 186, 372 and 24,544 networks), else a seeded sample of
:data:`SAMPLE_SIZE` distinct networks (the same one in every worker, so workers agree on what
is taken). The networks and their GFLOPs and parameters are computed once per machine and kept
in the user's cache (:mod:`studies.sampling.enumeration_cache`; the largest space takes about
15 s of CPU, reading it back under a second), and the candidates once per process.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from search_space.errors import ConfigError
from search_space.space import CONDITIONAL, InfeasibleConfig
from studies.sampling.enumeration_cache import (
    Enumeration,
    enumeration_key,
    load_enumeration,
    store_enumeration,
)

if TYPE_CHECKING:
    from search_space.config import ResNet3dConfig
    from search_space.dimensions import Value
    from search_space.space import SearchSpace
    from studies.study.sections import Constraints, StudySpec

__all__ = ["ENUMERATION_LIMIT", "SAMPLE_SIZE", "Candidates", "build_candidates", "params_key"]

ENUMERATION_LIMIT = 100_000  # combinations of choices; above it the space is sampled
SAMPLE_SIZE = 20_000  # distinct networks drawn from a space too large to enumerate
LATENCY_SOURCES = ("table", "latency table", "none")


def params_key(params: Mapping[str, Any]) -> str:
    """A hashable spelling of a trial's parameters (bools stay bools: ``true`` != ``1``)."""
    return json.dumps(dict(params), sort_keys=True)


@dataclass(frozen=True, eq=False, slots=True)
class Candidates:
    """The candidate networks of one spec, index-aligned arrays.

    ``features`` are the model's inputs: one column per value of each searched dimension
    (scaled by 1/sqrt 2, so two networks that differ in one dimension are at distance 1; a
    conditional dimension a network does not read is all zeros) and the log-costs known
    before training scaled to [0, 1]; ``groups`` lists the columns that share one length
    scale (a dimension's values, or one cost).
    """

    digests: tuple[str, ...]
    params: tuple[dict[str, Value], ...]
    gflops: np.ndarray
    params_m: np.ndarray
    latency_ms: np.ndarray  # NaN where no source gives it before training
    latency_source: str  # one of LATENCY_SOURCES
    features: np.ndarray
    groups: tuple[tuple[int, ...], ...]
    complete: bool  # every network of the space, not a sample
    index: dict[str, int]  # digest -> row
    by_params: dict[str, int]  # params_key -> row

    def __len__(self) -> int:
        return len(self.digests)

    def within(self, limits: Constraints) -> np.ndarray:
        """Which candidates keep the budgets, as far as known before training (a latency
        budget without a latency source is left to the trial, which times it first)."""
        ok = np.ones(len(self), dtype=bool)
        if limits.max_gflops is not None:
            ok &= self.gflops <= limits.max_gflops
        if limits.max_params_m is not None:
            ok &= self.params_m <= limits.max_params_m
        if limits.max_latency_ms is not None and self.latency_source != "none":
            ok &= self.latency_ms <= limits.max_latency_ms
        return ok

    def row_of(self, params: Mapping[str, Any]) -> int | None:
        """The candidate a trial's (fixed) parameters build, if it is one."""
        return self.by_params.get(params_key(params))


def _sample_params(
    space: SearchSpace, values: dict[str, Value]
) -> list[tuple[dict[str, Value], ResNet3dConfig | None]]:
    """The parameter sets ``SearchSpace.sample`` suggests for the non-conditional ``values``:
    a conditional dimension is added only when its values build different networks (or one
    of them is invalid, which ``sample`` also suggests and then reports infeasible). Each comes
    with its config when building it told whether the conditional matters (None: build it;
    an infeasible set is left out)."""
    rows: list[tuple[dict[str, Value], ResNet3dConfig | None]] = [(dict(values), None)]
    for dim in space.choices:
        if dim.name not in CONDITIONAL:
            continue
        grown: list[tuple[dict[str, Value], ResNet3dConfig | None]] = []
        for row, _ in rows:
            digests = set()
            built: list[tuple[dict[str, Value], ResNet3dConfig | None]] = []
            for value in dim.values:
                point = {**row, dim.name: value}
                try:
                    config = space.config_from_params(point)
                except InfeasibleConfig:
                    digests.add(f"invalid {value!r}")
                    continue
                digests.add(config.digest())
                built.append((point, config))
            # NOTE: the configs just built are reused (they are what config_from_params
            # returns for these parameters): each network is built once, not twice.
            grown.extend(built if len(digests) > 1 else [(row, None)])
        rows = grown
    return rows


Networks = dict[str, tuple[dict[str, "Value"], "ResNet3dConfig"]]


def _networks(space: SearchSpace, seed: int) -> tuple[Networks, bool]:
    """``digest -> (params, config)`` of the space's feasible networks; whether that is all."""
    plain = [d for d in space.choices if d.name not in CONDITIONAL]
    combinations = math.prod(len(d.values) for d in space.choices)
    complete = combinations <= ENUMERATION_LIMIT
    if complete:
        rows = (
            dict(zip([d.name for d in plain], row, strict=True))
            for row in itertools.product(*(d.values for d in plain))
        )
    else:
        rng = random.Random(seed)
        rows = ({d.name: rng.choice(d.values) for d in plain} for _ in range(SAMPLE_SIZE * 20))
    found: Networks = {}
    for values in rows:
        for params, built in _sample_params(space, values):
            if built is None:
                try:
                    built = space.config_from_params(params)
                except InfeasibleConfig:
                    continue
            found.setdefault(built.digest(), (params, built))
        if not complete and len(found) >= SAMPLE_SIZE:
            break
    return found, complete


def _latency_source(spec: StudySpec) -> str:
    if spec.study.table is not None:
        return "table"
    if spec.measure.latency in ("predicted", "both"):
        return "latency table"
    return "none"


def _latencies(spec: StudySpec, digests: list[str], params: list[dict[str, Value]]) -> np.ndarray:
    """Latency of each network before training, or NaN (see the module docstring)."""
    source = _latency_source(spec)
    if source == "table":
        from runners.scores.tabular import load_table

        table = load_table(str(spec.study.table))
        found: dict[str, float] = {}
        for row in table.rows:
            found.setdefault(row.digest, row.latency_ms)
        return np.array([found.get(d, math.nan) for d in digests], dtype=float)
    if source == "latency table":
        from search_space.latency_model import predict_latency

        latency_table = spec.measure.load_latency_table()
        assert latency_table is not None  # the spec requires one for these sources
        # NOTE: the configs are built again from their parameters (the enumeration cache
        # keeps parameters, not configs): config_from_params gives the same config.
        configs = (spec.space.config_from_params(p) for p in params)
        return np.array(
            [predict_latency(c, latency_table, spec.measure.input_shape).latency_ms
             for c in configs],
            dtype=float,
        )  # fmt: skip
    return np.full(len(digests), math.nan)


def _scaled_log(values: np.ndarray) -> np.ndarray:
    logs = np.log(np.maximum(values, 1e-12))
    low, high = logs.min(), logs.max()
    return (logs - low) / (high - low) if high > low else np.zeros_like(logs)


def _features(
    space: SearchSpace, params: list[dict[str, Value]], costs: list[np.ndarray]
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...]]:
    columns: list[np.ndarray] = []
    groups: list[tuple[int, ...]] = []
    for dim in space.choices:
        start = len(columns)
        # NOTE: values are compared with their type, so True is not 1 (as in params_key)
        column = {(type(value), value): i for i, value in enumerate(dim.values)}
        hit = np.array([column.get((type(v), v), -1)
                        for v in (p.get(dim.name, _ABSENT) for p in params)])  # fmt: skip
        for i in range(len(dim.values)):
            columns.append((hit == i).astype(float))
        groups.append(tuple(range(start, len(columns))))
    for values in costs:
        groups.append((len(columns),))
        columns.append(_scaled_log(values))
    matrix = np.column_stack(columns) if columns else np.zeros((len(params), 0))
    one_hot = sum(len(g) for g in groups[: len(space.choices)])
    matrix[:, :one_hot] /= math.sqrt(2.0)
    return matrix, tuple(groups)


_ABSENT = "__absent__"


_CACHE: dict[str, Candidates] = {}


def _costed(spec: StudySpec) -> Enumeration:
    """Every network of the space (or its sample) that fits the clip, with its exact costs:
    read from the enumeration cache, or computed and stored there
    (:mod:`studies.sampling.enumeration_cache`)."""
    from search_space.cost import cost

    key = enumeration_key(spec)
    found = load_enumeration(key)
    if found is not None:
        return found
    networks, complete = _networks(spec.space, spec.study.seed)
    fresh = Enumeration(digests=[], params=[], gflops=[], params_m=[], complete=complete)
    for digest, (point, config) in networks.items():
        try:
            analytic = cost(config, spec.measure.input_shape,
                            include_head=spec.measure.include_head,
                            num_classes=spec.data.num_classes)  # fmt: skip
        except ConfigError:  # too small for the clip the trials measure with
            continue
        fresh.digests.append(digest)
        fresh.params.append(point)
        fresh.gflops.append(analytic.gflops)
        fresh.params_m.append(analytic.params_m)
    store_enumeration(key, fresh)
    return fresh


def _enumerate(spec: StudySpec, use_latency: bool) -> Candidates:
    space = spec.space
    costed = _costed(spec)
    rows = list(range(len(costed.digests)))
    if spec.study.table is not None:
        # NOTE: in tabular mode the table is the world: a network it lacks would only fail.
        from runners.scores.tabular import load_table

        listed = set(load_table(spec.study.table).digests)
        rows = [i for i in rows if costed.digests[i] in listed]
    digests = [costed.digests[i] for i in rows]
    params = [costed.params[i] for i in rows]
    gflops = [costed.gflops[i] for i in rows]
    params_m = [costed.params_m[i] for i in rows]
    complete = costed.complete
    if not digests:
        raise ConfigError(
            f"sampler 'cost_aware': the space {space.name!r} has no feasible network for input "
            f"{list(spec.measure.input_shape)}"
        )
    latency = _latencies(spec, digests, params) if use_latency else np.array([math.nan])
    source = _latency_source(spec) if np.isfinite(latency).all() else "none"
    if source == "none":
        latency = np.full(len(digests), math.nan)
    costs = [np.array(gflops), np.array(params_m)]
    if source != "none":
        costs.append(latency)
    features, groups = _features(space, params, costs)
    return Candidates(
        digests=tuple(digests),
        params=tuple(params),
        gflops=np.array(gflops),
        params_m=np.array(params_m),
        latency_ms=latency,
        latency_source=source,
        features=features,
        groups=groups,
        complete=complete,
        index={d: i for i, d in enumerate(digests)},
        by_params={params_key(p): i for i, p in enumerate(params)},
    )


def build_candidates(spec: StudySpec, *, use_latency: bool = True) -> Candidates:
    """The candidates of ``spec`` (cached per process on what decides them).

    ``use_latency=False`` ignores the latency source, as for a study that has none (how
    ``benchmarks/bench_search.py`` measures that case on a table).
    """
    key = json.dumps(
        {
            "space": spec.space.to_dict(),
            "measure": [list(spec.measure.input_shape), spec.measure.include_head,
                        spec.measure.latency, spec.measure.latency_table],
            "classes": spec.data.num_classes,
            "table": spec.study.table,
            "use_latency": use_latency,
            "seed": spec.study.seed,
        },
        sort_keys=True,
        default=str,
    )  # fmt: skip
    # NOTE: one enumeration per process and spec: the candidates depend on the spec alone.
    if key not in _CACHE:
        _CACHE[key] = _enumerate(spec, use_latency)
    return _CACHE[key]
