"""Build a tabular benchmark through the normal study machinery, time it, export it, check it.

``r3dnas table build SPEC`` trains every distinct architecture of the spec's space with each
seed: it is an ablation over *all* searched parameters (every grid point x seed enqueued once,
taken by exactly one worker, resumable, other machines can join with ``r3dnas worker``; grid
points that build the same network reuse its trial). Latency is not measured while training
(training processes would distort it): ``r3dnas table latency`` times every distinct network in
a separate pass on a quiet machine, and ``r3dnas table export`` writes the CSV
(:class:`runners.scores.tabular.BenchmarkTable`) with the spec that built it beside it.
``r3dnas table retrain`` retrains one row from its stored config and seed and prints stored
against measured top-1 (identical on CPU).
"""

from __future__ import annotations

import json
import platform
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space._files import output_file
from search_space.errors import ConfigError, R3dnasError
from studies.core.defaults import RUNS_DIR
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    from runners.latency.measure import LatencyConfig
    from runners.scores.tabular import BenchmarkTable, TableRow
    from search_space.config import ResNet3dConfig
    from studies.core.reproducibility import Verdict
    from studies.study.sections import StudySpec

__all__ = [
    "RetrainResult",
    "build_table",
    "export_table",
    "measure_table_latency",
    "print_progress",
    "retrain_row",
    "space_architectures",
    "table_rows",
]


def build_table(
    spec: StudySpec,
    *,
    seeds: int = 2,
    workers: int = 1,
    study_name: str | None = None,
    storage: str | None = None,
    runs_dir: str | Path = RUNS_DIR,
    progress: bool = True,
    limit: int | None = None,
) -> Any:
    """Train every architecture of ``spec.space`` with ``seeds`` seeds (resumable).

    ``limit``: stop after that many grid points (a pilot of the table: the order is a seeded
    random one, so the pilot is a uniform sample); building again without it goes on.

    Returns the :class:`studies.run.ablation.AblationResult` of the underlying grid.
    """
    from studies.run.ablation import ablate

    factors = list(spec.space.param_names())
    if not factors:
        raise ConfigError("table build: the space searches no parameter; nothing to tabulate")
    return ablate(
        spec,
        factors=factors,
        seeds=seeds,
        study_name=study_name or spec.study.name,
        storage=storage,
        wandb_mode="disabled",
        runs_dir=runs_dir,
        progress=progress,
        workers=workers,
        # NOTE: a seeded random order, so a build stopped half-way is a uniform sample.
        order_seed=spec.study.seed,
        limit=limit,
    )


def _measured_trials(study: Any) -> dict[tuple[str, int], Any]:
    """``(digest, seed) -> trial`` of every completed trial that trained (not reused)."""
    from optuna.trial import TrialState

    found: dict[tuple[str, int], Any] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if attrs.get("state") != "complete" or "history" not in attrs:
            continue
        found.setdefault((str(attrs["digest"]), int(attrs["seed"])), trial)
    return found


def space_architectures(spec: StudySpec) -> dict[str, ResNet3dConfig]:
    """Every distinct network of the spec's space that the study can measure: ``digest ->
    canonical config`` (:meth:`~search_space.space.SearchSpace.architectures`, less those too
    small for ``[measure] input_shape``), sorted by digest.

    Latency depends on the network alone, so the latency pass can time all of them without
    waiting for training.
    """
    from search_space.canonical import canonicalize
    from search_space.cost import cost

    found: dict[str, ResNet3dConfig] = {}
    for digest, (_, config) in spec.space.architectures().items():
        try:
            cost(config, spec.measure.input_shape)
        except ConfigError:
            continue
        found[digest] = canonicalize(config)
    return dict(sorted(found.items()))


def measure_table_latency(
    study: Any,
    *,
    latency: LatencyConfig,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time every distinct network of a table study's space with ``latency``'s protocol (the
    CLI's: this CPU, eager mode, 100 runs; a table's latency is its one number per network).

    Each result is stored in the study (user attr ``table_latency``) as soon as it is measured,
    so an interrupted pass resumes where it stopped. With ``isolation = "pause"`` the study's
    registered workers on this machine are stopped while each network is timed (see
    :mod:`runners.latency.quiet`); anything else running distorts the numbers. ``limit``: time at
    most that many more networks in this call. With ``latency.reference`` each is timed beside the
    drift reference (:mod:`runners.latency.reference`); entries timed with the other setting are
    timed again.
    """
    from runners.latency.measure import measure_latency
    from studies.study.storage import study_spec

    spec = study_spec(study)
    shape = spec.measure.input_shape
    record = StudyRecord(study)
    done = record.table_latency
    configs = space_architectures(spec)
    # NOTE: an entry timed with the other reference setting is timed again, not mixed in.
    stale = {d for d, entry in done.items() if entry.get("reference", False) != latency.reference}
    todo = [d for d in configs if d not in done or d in stale][:limit]
    from runners.latency.quiet import pause_scope

    for index, digest in enumerate(todo):
        with pause_scope(study.study_name):  # NOTE: pauses this table build's workers only
            result = measure_latency(configs[digest], shape, latency)
        done[digest] = {
            "latency_ms": result.latency_ms,
            "latency_cv": result.cv_of_median,
            "reference": latency.reference,
            "threads": result.threads,
            "mode": result.mode,
            "device": result.device,
            "machine": _machine(),
        }
        record.record_table_latency(done)
        if on_progress is not None:
            on_progress(index + 1, len(todo))
    return done


def _machine() -> str:
    return f"{socket.gethostname()} {platform.machine()} {platform.processor() or ''}".strip()


def table_rows(study: Any, *, latency_of: Any = None) -> list[TableRow]:
    """The study's measured trials as table rows (latency from the latency pass, NaN if none).

    Every row of one network gets the same ``factors``: those of the grid point that spells the
    network canonically (e.g. ``inflate_style = "3x1x1"`` for a network with nothing inflated,
    whichever style its trials were sampled with). ``top5`` is NaN where it is 100 by
    construction (5 classes or fewer). ``latency_of``: the study whose latency pass times these
    networks (default ``study``; a third-seed study's networks are timed in the main one's).
    """
    import math

    from runners.scores.tabular import TableRow
    from studies.study.storage import stored_spec

    latency = StudyRecord(latency_of or study).table_latency
    spec = stored_spec(study)
    grid_factors = _canonical_factors(study, spec)
    top5_trivial = spec is not None and spec.data.num_classes <= 5
    rows = []
    for (digest, seed), trial in sorted(_measured_trials(study).items()):
        attrs = trial.user_attrs
        history = attrs["history"]
        timed = latency.get(digest, {})
        rows.append(
            TableRow(
                digest=digest,
                seed=seed,
                arch=str(attrs.get("arch", "")),
                config=dict(attrs["config"]),
                factors=dict(grid_factors.get(digest) or attrs.get("factors") or {}),
                params=float(attrs["params"]),
                params_m=float(attrs["params_m"]),
                gflops=float(attrs["gflops"]),
                top1=float(attrs["top1"]),
                top5=math.nan if top5_trivial else float(attrs["top5"]),
                val_top1=tuple(float(h.get("val_top1", math.nan)) for h in history),
                train_loss=tuple(float(h.get("train_loss", math.nan)) for h in history),
                train_top1=tuple(float(h.get("train_top1", math.nan)) for h in history),
                epochs=len(history),
                train_s=float(attrs.get("timings", {}).get("train_s", math.nan)),
                latency_ms=float(timed.get("latency_ms", math.nan)),
                latency_cv=float(timed.get("latency_cv", math.nan)),
                latency_threads=int(timed.get("threads", 0)),
                latency_mode=str(timed.get("mode", "")),
                machine=str(timed.get("machine", "")),
                versions=dict(attrs.get("versions", {})),
                trial=trial.number,
            )
        )
    return rows


def _canonical_factors(study: Any, spec: StudySpec | None) -> dict[str, dict[str, Any]]:
    """``digest -> factors`` of one grid point per network, the canonical spelling if any.

    Why: grid points that differ only in a parameter the network ignores (the inflate style of a
    network with nothing inflated) build one network; its rows must not say different things
    depending on which point a seed's trial happened to come from. A trial without a grid point
    (sampled off-grid before interrupted points were requeued) takes a grid trial's factors.
    """
    candidates: dict[str, list[dict[str, Any]]] = {}
    for t in study.get_trials(deepcopy=False):
        if "factors" in t.user_attrs and "digest" in t.user_attrs:
            found = candidates.setdefault(t.user_attrs["digest"], [])
            if t.user_attrs["factors"] not in found:
                found.append(t.user_attrs["factors"])
    chosen: dict[str, dict[str, Any]] = {}
    for digest, options in candidates.items():
        chosen[digest] = options[0]
        if spec is None or len(options) == 1:
            continue
        from search_space.canonical import canonicalize

        for factors in sorted(options, key=lambda f: json.dumps(f, sort_keys=True)):
            config = spec.space.config_from_params(factors)
            if canonicalize(config) == config:
                chosen[digest] = factors
                break
    return chosen


def export_table(study: Any, out: str | Path, *, extra: Sequence[Any] = ()) -> tuple[Path, Path]:
    """Write the table CSV to ``out`` and the spec that built it beside it (``.toml``).

    ``extra``: studies that trained more seeds of the same networks (``table build SPEC --study
    NAME --set train.seed=2 --seeds 1 --limit K``: a third seed on the first K networks of the
    build's seeded order); their rows join the table. Their spec must be ``study``'s but for
    ``[train] seed`` (and ``[study]``), so that ``table retrain`` of any row runs what trained it.

    Raises:
        ConfigError: ``out`` cannot be written (a folder, say) or ends in ``.toml``, the spec's
            own path; found before anything is read or written.
    """
    from runners.scores.tabular import BenchmarkTable
    from studies.study.toml_text import dumps_toml

    if output_file(out, option="--out").suffix.lower() == ".toml":
        raise ConfigError(
            f"--out must not end in .toml: the table's spec is written beside it as .toml; "
            f"got {str(out)!r} (e.g. --out table.csv)"
        )
    rows = table_rows(study)
    if not rows:
        raise ConfigError(f"study {study.study_name!r} has no trained architecture yet")
    for other in extra:
        _check_same_recipe(study, other)
        rows += table_rows(other, latency_of=study)
    rows.sort(key=lambda r: (r.digest, r.seed))
    csv_path = BenchmarkTable(rows, source=study.study_name).write(out)
    spec_path = csv_path.with_suffix(".toml")
    header = (
        f"The spec that built the benchmark table {csv_path.name} (study {study.study_name!r}).\n"
        "r3dnas table retrain reads it; r3dnas launch can run it again."
    )
    spec_path.write_text(dumps_toml(StudyRecord(study).spec or {}, header=header))
    return csv_path, spec_path


def _check_same_recipe(study: Any, other: Any) -> None:
    """Refuse rows of ``other`` unless its spec differs from ``study``'s only in the seed."""
    mine, theirs = StudyRecord(study).spec or {}, StudyRecord(other).spec or {}

    def recipe(raw: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in raw.items() if k not in ("study", "wandb")}
        out["train"] = {k: v for k, v in raw.get("train", {}).items() if k != "seed"}
        return out

    if recipe(mine) != recipe(theirs):
        differ = sorted(k for k in (set(mine) | set(theirs)) - {"study", "wandb"}
                        if recipe(mine).get(k) != recipe(theirs).get(k))  # fmt: skip
        raise ConfigError(
            f"--with {other.study_name!r}: its spec differs from {study.study_name!r}'s in "
            f"[{'], ['.join(differ)}] (only [train] seed may differ)"
        )


@dataclass(frozen=True, slots=True)
class RetrainResult:
    digest: str
    seed: int
    stored_top1: float
    measured_top1: float
    verdict: Verdict
    threads: int | None = None  # the thread count it retrained with, when not the table's

    @property
    def identical(self) -> bool:
        return self.stored_top1 == self.measured_top1

    def format(self) -> str:
        return f"architecture {self.digest} seed {self.seed}: {self.verdict.text}"


def retrain_row(
    table: str | Path, *, digest: str, seed: int, threads: int | None = None
) -> RetrainResult:
    """Retrain one row of a table from its stored config and seed with the table's spec, and
    judge the top-1 (:mod:`studies.core.reproducibility`: identical on the stored setup, else
    within the table's own seed spread).

    ``threads``: train with this many CPU threads instead of the spec's: another setup, so the
    row is judged against the seed spread: the cheap proxy of retraining on another CPU type.
    """
    import dataclasses

    from runners.data.datasets import build_datasets
    from runners.scores.tabular import BenchmarkTable
    from runners.training.accuracy import train_and_evaluate
    from search_space.config import ResNet3dConfig
    from studies.study.spec import load_spec

    loaded: BenchmarkTable = BenchmarkTable.load(table)
    row = loaded.lookup(digest, seed)
    if row is None:
        matches = [d for d in loaded.digests if d.startswith(digest)]
        if len(matches) == 1:
            row = loaded.lookup(matches[0], seed)
    if row is None:
        raise ConfigError(
            f"table {table}: no row for architecture {digest!r} with seed {seed} "
            f"(seeds: {', '.join(map(str, loaded.seeds))})"
        )
    spec_path = Path(table).with_suffix(".toml")
    if not spec_path.is_file():
        raise R3dnasError(f"table {table}: the spec that built it ({spec_path}) is missing")
    spec = load_spec(spec_path)
    if threads == spec.train.num_threads:
        threads = None  # the table's own setting: an identity check
    train_set, val_set = build_datasets(spec.data)
    result = train_and_evaluate(
        ResNet3dConfig.from_dict(row.config),
        train_set,
        val_set,
        dataclasses.replace(
            spec.train,
            seed=seed,
            num_threads=spec.train.num_threads if threads is None else threads,
        ),
        num_classes=spec.data.num_classes,
        num_workers=spec.data.num_workers,
    )
    from runners.latency.measure import library_versions
    from studies.core.reproducibility import judge_top1, seed_spread, training_setup

    pairs = [
        (first.top1, second.top1)
        for d in loaded.digests
        if (first := loaded.lookup(d, loaded.seeds[0])) is not None
        and len(loaded.seeds) > 1
        and (second := loaded.lookup(d, loaded.seeds[1])) is not None
    ]
    verdict = judge_top1(
        row.top1,
        result.top1,
        stored_setup=row.versions,
        here_setup=library_versions()
        | training_setup(spec.train.num_threads if threads is None else threads),
        spread=seed_spread(pairs),
    )
    return RetrainResult(
        digest=row.digest,
        seed=seed,
        stored_top1=row.top1,
        measured_top1=result.top1,
        verdict=verdict,
        threads=threads,
    )


def print_progress(done: int, total: int) -> None:
    print(f"\rlatency {done}/{total}", end="" if done < total else "\n", file=sys.stderr)
