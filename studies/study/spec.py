"""Study specs: one TOML file describes a whole study.

Sections (each optional but ``[study]``; every key is checked, an unknown one is an error that
names the key and its section)::

    [study]        name, objectives, sampler, seed, n_trials, timeout_s, enqueue_presets,
                   n_startup_trials, pruner, pruner_margin, table, confirm_seeds
    [space]        a search space (see search_space.space), or base = preset | file.json
    [data]         runners.data.datasets.DataConfig fields
    [train]        runners.training.accuracy.TrainConfig fields, and keep_checkpoints (the study's)
    [measure]      input_shape, device, latency_mode, latency_warmup, latency_repeats, ...
    [constraints]  max_gflops, max_params_m, max_latency_ms
    [wandb]        mode, project, entity

Every key, its default and meaning: ``docs/spec.md`` (a test keeps it complete). Shipped specs
live in ``studies/presets/``; :func:`load_spec` takes their name or a path.
The raw TOML tables are kept (``spec.raw``) so they can be logged beside each trial.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space._files import read_text
from search_space.errors import ConfigError
from studies.core.study_names import check_study_name
from studies.study.sections import (
    COSTS_BEFORE_TRAINING,
    KEEP_CHECKPOINTS,
    LATENCY_SETTINGS,
    LATENCY_SOURCES,
    PRUNERS,
    SAMPLERS,
    Constraints,
    MeasureSpec,
    StudySection,
    StudySpec,
    load_latency_table,
    parse_objective,
)
from studies.tracking.tracker import TrackingConfig

if TYPE_CHECKING:
    from search_space.space import SearchSpace

__all__ = [
    "STUDY_TRAIN_KEYS",
    "WANDB_KEYS",
    "apply_overrides",
    "load_spec",
    "parse_spec",
    "spec_names",
]

DEFAULT_SPEC = "cpu_default"


# ---------------------------------------------------------------------- parsing helpers
_SECTIONS = ("study", "space", "data", "train", "measure", "constraints", "wandb")


def _check_keys(section: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in [{section}]; allowed: {', '.join(allowed)}")


def _typed(section: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"[{section}] {key} must be {names}; got {value!r}")
    return value


def _default(cls: type, key: str) -> Any:
    """The default of a spec dataclass's field: every section's defaults live in its class."""
    found = cls.__dataclass_fields__[key]  # type: ignore[attr-defined]
    return found.default_factory() if found.default is MISSING else found.default


def _parse_study(table: Mapping[str, Any], fallback_name: str) -> StudySection:
    _check_keys("study", table, tuple(StudySection.__dataclass_fields__))

    def get(key: str) -> Any:
        return table.get(key, _default(StudySection, key))

    objectives_raw = table.get(
        "objectives", [str(o) for o in _default(StudySection, "objectives")]
    )
    if isinstance(objectives_raw, str) or not isinstance(objectives_raw, list):
        raise ConfigError(
            f'[study] objectives must be a list like ["top1:max", "gflops:min"]; '
            f"got {objectives_raw!r}"
        )
    objectives = tuple(parse_objective(o) for o in objectives_raw)
    if not objectives:
        raise ConfigError("[study] objectives must name at least one metric")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"[study] objectives repeat a metric: {names}")
    sampler = get("sampler")
    if sampler not in SAMPLERS:
        raise ConfigError(f"[study] sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    n_trials = _typed("study", "n_trials", get("n_trials"), int)
    if n_trials < 1:
        raise ConfigError(f"[study] n_trials must be a positive int; got {n_trials}")
    timeout = get("timeout_s")
    if timeout is not None:
        timeout = _typed("study", "timeout_s", timeout, float)
        if not timeout > 0 or timeout == float("inf"):
            raise ConfigError(f"[study] timeout_s must be a positive number of seconds (leave it "
                              f"out for no limit); got {timeout}")  # fmt: skip
    presets = tuple(_typed("study", "enqueue_presets", get("enqueue_presets"), (list, tuple)))
    if presets:
        from search_space.presets import preset

        for name in presets:
            preset(name)  # raises with the valid names
    pruner = get("pruner")
    if pruner not in PRUNERS:
        raise ConfigError(f"[study] pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}")
    if pruner in ("pareto", "moasha"):
        _check_multi_objective_pruner(pruner, names)
    elif pruner != "none" and len(objectives) > 1:
        raise ConfigError(
            f"[study] pruner {pruner!r} needs a single objective (Optuna cannot prune "
            f"multi-objective trials); got {len(objectives)} objectives"
        )
    if pruner != "none" and objectives[0].name not in ("top1", "top5"):
        raise ConfigError(
            f"[study] pruner {pruner!r} prunes on per-epoch accuracy; the objective must be top1 "
            f"or top5, got {objectives[0].name!r}"
        )
    margin = _typed("study", "pruner_margin", get("pruner_margin"), float)
    if not 0 <= margin <= 100:
        raise ConfigError(f"[study] pruner_margin must be top-1 points in [0, 100]; got {margin}")
    table_path = get("table")
    if table_path is not None:
        table_path = _typed("study", "table", table_path, str)
        if not Path(table_path).is_file():
            raise ConfigError(
                f"[study] table: {table_path} does not exist (a CSV of r3dnas table export)"
            )
    confirm = _typed("study", "confirm_seeds", get("confirm_seeds"), int)
    if confirm > MAX_SEEDS:
        raise ConfigError(f"[study] confirm_seeds must be at most {MAX_SEEDS}; got {confirm}")
    if confirm < 0 or (confirm and "top1" not in names):
        raise ConfigError(f"[study] confirm_seeds must be an int >= 0 (> 0 needs top1 among the "
                          f"objectives, {names}); got {confirm}")  # fmt: skip
    return StudySection(
        confirm_seeds=confirm,
        table=table_path,
        pruner=pruner,
        pruner_margin=margin,
        name=check_study_name(
            _typed("study", "name", table.get("name", fallback_name), str), field="[study] name"
        ),
        objectives=objectives,
        sampler=sampler,
        seed=_study_seed(get("seed")),
        n_trials=n_trials,
        timeout_s=timeout,
        enqueue_presets=presets,
        n_startup_trials=_at_least("n_startup_trials", get("n_startup_trials"), 0),
    )


# NOTE: seeds per network (confirm_seeds, ablate --seeds): a million queued 19,525 trials in
# two minutes before anything trained; 100 is far beyond any study's statistics.
MAX_SEEDS = 100


def _study_seed(value: Any) -> int:
    """The samplers' seed: numpy takes only [0, 2**32 - 1] (-1 was a traceback there)."""
    seed = _typed("study", "seed", value, int)
    if not 0 <= seed < 2**32:
        raise ConfigError(f"[study] seed must be an int in [0, 2**32 - 1]; got {seed}")
    return int(seed)


def _at_least(key: str, value: Any, minimum: int) -> int:
    number = _typed("study", key, value, int)
    if number < minimum:
        raise ConfigError(f"[study] {key} must be an int >= {minimum}; got {number}")
    return int(number)


def _check_multi_objective_pruner(pruner: str, names: list[str]) -> None:
    """``pareto`` / ``moasha`` compare a per-epoch top1 beside costs known before training."""
    costs = [n for n in names if n != "top1"]
    if "top1" not in names or not costs:
        raise ConfigError(
            f"[study] pruner {pruner!r} needs top1 and at least one cost among the objectives "
            f'(e.g. ["top1:max", "gflops:min"]); got {names}'
        )
    late = [n for n in costs if n not in COSTS_BEFORE_TRAINING]
    if late:
        raise ConfigError(
            f"[study] pruner {pruner!r}: every objective besides top1 must be known before "
            f"training ({', '.join(COSTS_BEFORE_TRAINING)}); got {', '.join(late)}"
        )


def _parse_measure(
    table: Mapping[str, Any], space_input: Any, base_dir: Path = Path(".")
) -> MeasureSpec:
    from search_space.shapes import parse_input_shape

    allowed = tuple(MeasureSpec.__dataclass_fields__)
    _check_keys("measure", table, allowed)
    values = dict(table)
    shape = values.pop("input_shape", None)
    if shape is None:
        shape = space_input if space_input is not None else MeasureSpec().input_shape
    for key in ("latency_warmup", "latency_repeats", "throughput_batch"):
        if key in values and (_typed("measure", key, values[key], int) < 1):
            raise ConfigError(f"[measure] {key} must be a positive int; got {values[key]}")
    for key in ("include_head", "measure_latency"):  # NOTE: "no" was taken as true
        if key in values:
            _typed("measure", key, values[key], bool)
    if "latency_repeats" in values and values["latency_repeats"] < 2:
        raise ConfigError("[measure] latency_repeats must be at least 2 (for the run-to-run CV)")
    source = values.get("latency", _default(MeasureSpec, "latency"))
    if source not in LATENCY_SOURCES:
        raise ConfigError(
            f"[measure] latency must be one of {', '.join(map(repr, LATENCY_SOURCES))}; "
            f"got {source!r}"
        )
    table_path = values.get("latency_table")
    if table_path is not None:
        table_path = _typed("measure", "latency_table", table_path, str)
        if not Path(table_path).is_absolute():
            values["latency_table"] = str(base_dir / table_path)
    measure = MeasureSpec(input_shape=parse_input_shape(shape), **values)
    _check_latency_config(measure)
    if source != "measured":
        _check_latency_table(measure)
    return measure


def _check_latency_config(measure: MeasureSpec) -> None:
    """Validate each latency setting by :class:`~runners.latency.measure.LatencyConfig`, alone,
    so its error is given back under the spec's key (``mode`` -> ``[measure] latency_mode``)."""
    from runners.latency.measure import LatencyConfig

    for key, name in LATENCY_SETTINGS.items():
        try:
            LatencyConfig(**{name: getattr(measure, key)})
        except ConfigError as exc:
            raise ConfigError(f"[measure] {key} {str(exc).removeprefix(name + ' ')}") from exc
    measure.latency_config()  # and together (no rule spans two settings today)


def _check_latency_table(measure: MeasureSpec) -> None:
    """A predicted latency needs a table for this clip (and, for "both", this mode)."""
    if measure.latency_table is None:
        raise ConfigError(
            f'[measure] latency = {measure.latency!r} needs latency_table = "FILE.json" '
            "(build one with `r3dnas latency-table --space SPACE --out FILE.json`)"
        )
    table = _with_section("measure", lambda _: load_latency_table(str(measure.latency_table)), {})
    if tuple(table.input_shape[1:]) != tuple(measure.input_shape[1:]):
        raise ConfigError(
            f"[measure] latency_table was built for clips {list(table.input_shape[1:])} "
            f"(C, T, H, W) but the study measures {list(measure.input_shape[1:])}; build one "
            "with `r3dnas latency-table --input N,C,T,H,W`"
        )
    if measure.latency == "both" and table.mode != measure.latency_mode:
        raise ConfigError(
            f"[measure] latency = 'both' compares like with like: latency_table was measured "
            f"in mode {table.mode!r} but latency_mode is {measure.latency_mode!r}"
        )


def _parse_constraints(table: Mapping[str, Any]) -> Constraints:
    allowed = tuple(Constraints.__dataclass_fields__)
    _check_keys("constraints", table, allowed)
    values = {}
    for key, value in table.items():
        number = _typed("constraints", key, value, float)
        if not 0 < number < float("inf"):  # NOTE: nan failed every trial inside Optuna
            raise ConfigError(f"[constraints] {key} must be a positive finite number; got {value}")
        values[key] = number
    return Constraints(**values)


WANDB_KEYS = ("mode", "project", "entity")

# [train] keys that are the study's, not the runner's (TrainConfig has the others): which trained
# weights a study keeps under <runs_dir>/<study>/checkpoints.
STUDY_TRAIN_KEYS = ("keep_checkpoints",)


def _pop_keep_checkpoints(table: dict[str, Any]) -> str:
    value = table.pop("keep_checkpoints", _default(StudySpec, "keep_checkpoints"))
    if value not in KEEP_CHECKPOINTS:
        raise ConfigError(
            f"[train] keep_checkpoints must be one of {', '.join(map(repr, KEEP_CHECKPOINTS))}; "
            f"got {value!r}"
        )
    return str(value)


def _parse_wandb(table: Mapping[str, Any]) -> TrackingConfig:
    """The ``[wandb]`` table (its values are checked by :class:`TrackingConfig`)."""
    _check_keys("wandb", table, WANDB_KEYS)
    config: TrackingConfig = _with_section("wandb", TrackingConfig.from_dict, table)
    return config


def _with_section(section: str, build: Any, table: Mapping[str, Any]) -> Any:
    """Call a ``from_dict`` and make sure its error names the section."""
    try:
        return build(dict(table))
    except ConfigError as exc:
        message = str(exc)
        if f"[{section}]" in message:
            raise
        # NOTE: a config that names its own section ("wandb.mode ...") is not named twice
        raise ConfigError(f"[{section}] {message.removeprefix(section + '.')}") from exc


def _parse_space(table: dict[str, Any], base_dir: Path) -> SearchSpace:
    """``name = "default"`` (a shipped space or a space TOML), else an inline space table."""
    import dataclasses

    from search_space.shapes import parse_input_shape
    from search_space.space import SearchSpace, load_space

    if "name" in table and set(table) <= {"name", "input_shape"}:
        name = str(table["name"])
        candidate = base_dir / name
        space = load_space(candidate if candidate.suffix == ".toml" else name)
        if "input_shape" in table:
            space = dataclasses.replace(space, input_shape=parse_input_shape(table["input_shape"]))
        return space
    if not table:
        return load_space("default")
    if "name" in table and "base" not in table:
        # NOTE: a named space with more than input_shape read as an inline space whose base was
        # missing, an error that did not say where the rest of the keys belong
        extra = sorted(set(table) - {"name", "input_shape"})
        raise ConfigError(
            f"[space] a named space (name = {table['name']!r}) takes only input_shape; got also "
            f"{', '.join(extra)}. To change its dimensions, copy the space into the spec as an "
            "inline [space] with base, input_shape and [space.dimensions]"
        )
    return SearchSpace.from_dict(table, root=base_dir)


def parse_spec(data: Mapping[str, Any], *, source: str, base_dir: Path) -> StudySpec:
    """Build a :class:`StudySpec` from parsed TOML (``base_dir`` resolves relative paths)."""
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(
                f"unknown section [{key}] in {source}; allowed: "
                + ", ".join(f"[{s}]" for s in _SECTIONS)
            )
    if "study" not in data:
        raise ConfigError(
            f"{source} has no [study] section: a study spec has one (name, objectives, sampler, "
            "...; an empty [study] takes its defaults and the file's name)"
        )
    from runners.data.datasets import DataConfig
    from runners.training.accuracy import TrainConfig

    study_table = dict(data["study"])
    if isinstance(study_table.get("table"), str) and not Path(study_table["table"]).is_absolute():
        study_table["table"] = str(base_dir / study_table["table"])
    study = _parse_study(study_table, fallback_name=Path(source).stem)
    space = _with_section("space", lambda d: _parse_space(d, base_dir), data.get("space", {}))
    data_table = dict(data.get("data", {}))
    for key in ("root", "train_list", "val_list"):
        if isinstance(data_table.get(key), str) and not Path(data_table[key]).is_absolute():
            data_table[key] = str(base_dir / data_table[key])
    data_cfg = _with_section("data", DataConfig.from_dict, data_table)
    train_table = dict(data.get("train", {}))
    keep_checkpoints = _pop_keep_checkpoints(train_table)
    train_cfg = _with_section("train", TrainConfig.from_dict, train_table)
    measure = _parse_measure(
        data.get("measure", {}), getattr(space, "input_shape", None), base_dir
    )
    spec = StudySpec(
        study=study,
        space=space,
        data=data_cfg,
        train=train_cfg,
        measure=measure,
        constraints=_parse_constraints(data.get("constraints", {})),
        wandb=_parse_wandb(data.get("wandb", {})),
        source=source,
        raw=_raw_with_resolved_paths(data, data_table, base_dir),
        keep_checkpoints=keep_checkpoints,
    )
    return spec


def _raw_with_resolved_paths(
    data: Mapping[str, Any], data_table: dict[str, Any], base_dir: Path
) -> dict[str, Any]:
    """The TOML tables as given, but with relative file paths made absolute.

    Why: studies store this copy and ``reproduce``/``export`` parse it again later, from any
    working directory; paths relative to the spec file would then point elsewhere.
    """
    raw = {k: v for k, v in data.items()}
    if "data" in raw:
        raw["data"] = data_table
    study = dict(raw.get("study", {}))
    if isinstance(study.get("table"), str) and not Path(study["table"]).is_absolute():
        study["table"] = str(base_dir / study["table"])
        raw["study"] = study
    space = dict(raw.get("space", {}))
    for key, suffix in (("name", ".toml"), ("base", ".json")):
        value = space.get(key)
        if isinstance(value, str) and value.endswith(suffix) and not Path(value).is_absolute():
            space[key] = str(base_dir / value)
    if space:
        raw["space"] = space
    measure = dict(raw.get("measure", {}))
    table = measure.get("latency_table")
    if isinstance(table, str) and not Path(table).is_absolute():
        measure["latency_table"] = str(base_dir / table)
        raw["measure"] = measure
    return raw


def spec_names() -> tuple[str, ...]:
    """Names of the specs shipped in ``studies/presets``."""
    folder = resources.files("studies") / "presets"
    return tuple(
        sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The TOML tables with ``SECTION.KEY=VALUE`` overrides (the CLI's ``--set``) applied.

    ``VALUE`` is read as a TOML value (``1``, ``0.5``, ``true``, ``[1, 3, 8, 64, 64]``,
    ``"sgd"``); anything that is not one is taken as a string. ``KEY`` may itself be dotted,
    as in the file: ``space.dimensions.layer3.inflate=["all"]`` sets what the line
    ``layer3.inflate = ["all"]`` sets under ``[space.dimensions]``, and leaves the other
    dimensions as they are. Keys are checked afterwards by :func:`parse_spec`, like the file's.
    """
    import copy

    tables = copy.deepcopy(dict(data))
    for item in overrides:
        path, sep, text = item.partition("=")
        parts = [part.strip() for part in path.split(".")]
        if not (sep and len(parts) >= 2 and all(parts)):
            raise ConfigError(
                f"--set expects SECTION.KEY=VALUE (e.g. train.epochs=1); got {item!r}"
            )
        if parts[0] not in _SECTIONS:
            raise ConfigError(
                f"--set {item!r}: unknown section [{parts[0]}]; allowed: "
                + ", ".join(f"[{section}]" for section in _SECTIONS)
            )
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        table = tables
        for depth, part in enumerate(parts[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: {where} is a value, not a table")
        table[parts[-1]] = value
    return tables


def load_spec(
    name_or_path: str | Path | None = None, *, overrides: Sequence[str] = ()
) -> StudySpec:
    """A shipped spec by name (default ``cpu_default``) or a TOML file by path.

    Args:
        overrides: ``SECTION.KEY=VALUE`` items applied on top (see :func:`apply_overrides`).
    """
    target = DEFAULT_SPEC if name_or_path is None else str(name_or_path)
    path = Path(target)
    if not (path.suffix == ".toml" or path.exists()):
        shipped = resources.files("studies") / "presets" / f"{target}.toml"
        if not shipped.is_file():
            raise ConfigError(
                f"unknown study spec {target!r}: not a file, and not one of the shipped specs "
                f"({', '.join(spec_names())})"
            )
        text = shipped.read_text()
        source, base_dir = f"{target}.toml", Path.cwd()
    else:
        if not path.exists():
            raise ConfigError(f"study spec file {target!r} not found")
        text = read_text(path, failure="cannot read study spec file {path}: {reason}")
        source, base_dir = str(path), path.parent.resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_spec(data, source=source, base_dir=base_dir)
