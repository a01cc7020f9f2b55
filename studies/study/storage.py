"""Where a study lives and how it is opened: storage URLs, the study, its stored spec.

Every command opens its study here: ``launch`` and ``ablate`` create (or resume) one with
:func:`open_study`; the commands that only read a study find it with :func:`resolve_study`; a
worker rebuilds the spec the study was launched with from :func:`study_spec`.

Accepted forms:

* ``sqlite:///path/to/file.db`` — the default, one machine (``./runs/<study>.db``);
* ``postgresql://user:password@host:port/db`` — many machines (needs ``psycopg``);
* ``journal:///path/to/study.log`` — a journal file on a shared filesystem.

``--storage`` wins, then the ``R3DNAS_STORAGE`` environment variable, then the default. RDB
storages get heartbeats, so a worker killed mid-trial has its trial failed after the grace
period and retried (``RetryHeartbeatStaleTrialCallback``). Passwords never reach a log line:
print :func:`display_url` instead of the URL.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_space.errors import ConfigError, R3dnasError
from studies.core.defaults import RUNS_DIR
from studies.core.study_names import check_study_name
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

    from studies.study.sections import StudySpec

__all__ = [
    "StorageSettings",
    "display_url",
    "locate_study",
    "name_objectives",
    "open_storage",
    "open_study",
    "resolve_storage_url",
    "resolve_study",
    "storage_settings",
    "stored_spec",
    "study_spec",
    "study_storage",
    "use_search",
]

_log = logging.getLogger(__name__)

ENV_VAR = "R3DNAS_STORAGE"
SCHEMES = ("sqlite", "postgresql", "journal")


@dataclass(frozen=True, kw_only=True, slots=True)
class StorageSettings:
    """Heartbeat settings (seconds); ``stall_s``: how long a waiting worker tolerates a study
    in which nothing changes (None: :func:`studies.loop.stall_limit` of the grace period)."""

    heartbeat_interval: int = 10
    grace_period: int = 30
    max_retry: int = 2
    stall_s: int | None = None


def default_url(study_name: str, runs_dir: Path | str = RUNS_DIR) -> str:
    path = Path(runs_dir) / f"{study_name}.db"
    return f"sqlite:///{path}"


def resolve_storage_url(
    url: str | None, *, study_name: str, runs_dir: Path | str = RUNS_DIR
) -> str:
    """The URL to use: the argument, else ``$R3DNAS_STORAGE``, else ``./runs/<name>.db``."""
    chosen = url or os.environ.get(ENV_VAR) or default_url(study_name, runs_dir)
    scheme = chosen.split(":", 1)[0].split("+", 1)[0]
    if "://" not in chosen or scheme not in SCHEMES:
        raise ConfigError(
            f"storage URL {display_url(chosen)!r} is not supported; use sqlite:///FILE.db, "
            "postgresql://USER:PASSWORD@HOST/DB or journal://FILE.log"
        )
    if scheme == "sqlite" and chosen.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        raise ConfigError(
            f"storage URL {display_url(chosen)!r} is an in-memory database: a study there is "
            "lost when the command ends and no worker can join it; use sqlite:///FILE.db"
        )
    return chosen


def _journal_file(url: str) -> Path:
    """The file of a ``journal://`` URL: ``journal://rel.log`` is relative to the working
    folder, ``journal:///abs/dir/f.log`` absolute.

    A file right under ``/`` (``journal:///f.log``) is refused: it is what a user who copied
    the relative ``sqlite:///f.db`` pattern gets, and it wrote to the filesystem's root.
    A folder is refused too (Optuna reads it as a file and fails with a traceback).
    """
    path = Path(url.removeprefix("journal://"))
    if path.is_absolute() and path.parent == Path(path.anchor):
        raise ConfigError(
            f"storage {display_url(url)} names {path}, a file at the filesystem's root; write "
            f"journal://{path.name} for a file in this folder, or journal:///DIR/{path.name}"
        )
    if path.is_dir():
        raise ConfigError(f"storage {display_url(url)} names the folder {path}, not a file")
    return path


def _storage_file(url: str) -> Path | None:
    """The file a SQLite or journal URL names (None for a server, or SQLite in memory)."""
    if url.startswith("journal://"):
        return _journal_file(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def _study_names(url: str) -> list[str]:
    """The studies in an existing storage (an empty list when its file does not exist)."""
    import optuna

    path = _storage_file(url)
    if path is not None and not path.is_file():
        return []  # NOTE: opening it would create an empty database: a query writes nothing
    return list(optuna.get_all_study_names(open_storage(url)))


def locate_study(
    study_name: str | None, *, storage: str | None, runs_dir: Path | str = RUNS_DIR
) -> tuple[str, str]:
    """``(name, url)`` of an existing study, for the commands that only read one.

    The storage is ``storage``, else ``$R3DNAS_STORAGE``, else ``<runs_dir>/<name>.db`` (or,
    when no file there holds the name, whichever ``<runs_dir>/*.db`` does); with no name and
    no storage, every ``<runs_dir>/*.db``. Without a name, there must be exactly one study.
    Nothing is created: a missing SQLite or journal file is an error, not an empty new
    database. Errors name the studies that do exist.
    """
    explicit = storage or os.environ.get(ENV_VAR)
    if explicit:
        url = resolve_storage_url(storage, study_name=study_name or "", runs_dir=runs_dir)
        path = _storage_file(url)
        where = display_url(url) + (" (no such file)" if path and not path.is_file() else "")
        found = [(name, url) for name in _study_names(url)]
    else:
        if study_name is not None:
            url = resolve_storage_url(None, study_name=study_name, runs_dir=runs_dir)
            if study_name in _study_names(url):
                return study_name, url
        found = _studies_in(runs_dir)
        where = f"{Path(runs_dir)}/"
    names = ", ".join(sorted({name for name, _ in found})) or "none"
    if study_name is None:
        if len(found) == 1:
            return found[0]
        if not found:
            raise ConfigError(f"no study in {where}; start one with r3dnas launch")
        raise ConfigError(f"{where} holds {len(found)} studies ({names}); name one with --study")
    matches = [(name, url) for name, url in found if name == study_name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(
            f"several storages in {where} hold a study named {study_name!r} "
            f"({', '.join(display_url(u) for _, u in matches)}); pick one with --storage"
        )
    raise ConfigError(f"no study named {study_name!r} in {where} (studies there: {names})")


def _studies_in(runs_dir: Path | str) -> list[tuple[str, str]]:
    """Every study in the default SQLite files of ``runs_dir`` (nothing is created)."""
    found: list[tuple[str, str]] = []
    for path in sorted(Path(runs_dir).glob("*.db")):
        url = f"sqlite:///{path}"
        found.extend((name, url) for name in _study_names(url))
    return found


def resolve_study(
    study: optuna.Study | str | None, *, storage: str | None, runs_dir: Path | str = RUNS_DIR
) -> optuna.Study:
    """``study`` itself, or the existing study :func:`locate_study` finds by that name (None:
    the storage's only study), loaded for reading (its sampler is irrelevant)."""
    import optuna

    if isinstance(study, optuna.Study):
        return study
    name, url = locate_study(study, storage=storage, runs_dir=runs_dir)
    loaded = optuna.load_study(study_name=name, storage=open_storage(url))
    try:
        name_objectives(loaded)
    except Exception as exc:  # noqa: BLE001 - e.g. a read-only file: reading still works
        _log.warning("could not name the objectives of study %r: %s", name, exc)
    return loaded


def name_objectives(study: optuna.Study) -> None:
    """Give the study's objectives their names in Optuna (``study.metric_names``).

    Why: optuna-dashboard labels its axes, and ``trials_dataframe()`` its columns, from
    ``metric_names``; without them they read "0", "1" / ``values_0``. A study r3dnas made
    records its objectives as a user attribute, so a study made before names were set gets
    them when it is next opened. Studies r3dnas did not make are left alone.
    """
    import optuna

    names = StudyRecord(study).recorded_objectives
    if not names or study.metric_names == names:
        return
    with warnings.catch_warnings():
        # NOTE: "experimental" since Optuna 3.2; it is what the dashboard and pandas read.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage object of ``study``.

    NOTE: Optuna has no public accessor for a study's storage (a running ``Trial`` has
    ``trial.storage``; ``Study`` has none), so this is the one place that reads
    ``study._storage``; code that opened the storage itself passes that object instead.
    """
    storage: BaseStorage = study._storage
    return storage


def storage_settings(
    heartbeat_s: int | None = None, grace_s: int | None = None, stall_s: int | None = None
) -> StorageSettings:
    """Heartbeat settings from the CLI's ``--heartbeat`` / ``--grace`` / ``--stall`` (None: the
    default)."""
    flags = (("--heartbeat", heartbeat_s), ("--grace", grace_s), ("--stall", stall_s))
    for flag, value in flags:
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive number of seconds; got {value}")
    defaults = StorageSettings()
    heartbeat = heartbeat_s or defaults.heartbeat_interval
    grace = grace_s or defaults.grace_period
    # NOTE: a trial whose beat is older than the grace period is failed and retried by the
    # other workers: with beats as slow as the grace, every live trial would look dead.
    if heartbeat >= grace:
        raise ConfigError(
            f"--grace ({grace} s) must be longer than --heartbeat ({heartbeat} s): a trial "
            "that beats less often than that looks dead to other workers"
        )
    return StorageSettings(
        heartbeat_interval=heartbeat,
        grace_period=grace,
        max_retry=defaults.max_retry,
        stall_s=stall_s,
    )


def open_study(
    spec: StudySpec,
    *,
    study_name: str,
    storage_url: str,
    settings: StorageSettings | None = None,
) -> optuna.Study:
    """Create or load the study; a study with other objectives is an error, not a mix.

    A new study records its objectives and the spec (passwords redacted) as user attributes:
    :func:`stored_spec` reads it back; its objectives are also Optuna's metric names
    (:func:`name_objectives`).
    """
    import optuna

    check_study_name(study_name, field="study name")
    directions = list(spec.directions)
    study = optuna.create_study(
        study_name=study_name,
        storage=open_storage(storage_url, settings),
        directions=directions,
        load_if_exists=True,
    )
    use_search(study, spec)
    stored = [d.name.lower() for d in study.directions]
    if stored != directions:
        raise ConfigError(
            f"study {study_name!r} in {display_url(storage_url)} has directions {stored}, but the "
            f"spec asks for {directions}; use another --study name"
        )
    record = StudyRecord(study)
    if not record.made_by_r3dnas:
        record.record_spec(
            objectives=list(spec.objective_names), spec=_jsonable(spec.raw), source=spec.source
        )
    elif record.recorded_objectives != list(spec.objective_names):
        raise ConfigError(
            f"study {study_name!r} records objectives {record.recorded_objectives}, the spec "
            f"asks for {list(spec.objective_names)}; use another --study name"
        )
    else:
        changed = changed_keys(record.spec or {}, _jsonable(spec.raw))
        space = [key for key in changed if key.split(".")[0] == "space"]
        if space:
            # NOTE: Optuna cannot change a parameter's choices inside a study: every trial
            # failed ("CategoricalDistribution does not support dynamic value space")
            raise ConfigError(
                f"study {study_name!r} was launched with another search space (this spec "
                f"differs in {', '.join(space[:4])}); use another --study name"
            )
        if changed:
            # NOTE: a resumed study with another space or training mixes incomparable trials
            # on one front, silently; resuming with a shorter schedule is legitimate, so this
            # is said, not refused
            shown = ", ".join(changed[:6]) + (
                f" and {len(changed) - 6} more" if len(changed) > 6 else ""
            )
            print(f"note: study {study_name!r} was launched with another spec; this run differs "
                  f"in {shown}. Its workers and exports keep the spec it was launched with; "
                  "use another --study name for a new experiment", file=sys.stderr)  # fmt: skip
    name_objectives(study)
    return study


def use_search(study: optuna.Study, spec: StudySpec) -> None:
    """Make ``study`` sample and prune as ``spec`` says.

    Optuna stores neither the sampler nor the pruner: every process that runs trials sets them
    on its own ``Study`` object, the one that creates the study (:func:`open_study`) and a worker
    that joins it alike.
    """
    from studies.study.samplers import build_pruner, build_sampler

    study.sampler = build_sampler(spec)
    study.pruner = build_pruner(spec)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two specs' tables (``space.dimensions.
    layer3.inflate``), sorted; a whole table added or removed is one key."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "(the spec)"]
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            keys.append(name)
        else:
            keys.extend(changed_keys(old[key], new[key], name))
    return keys


def _jsonable(value: Any) -> Any:
    import json

    from studies.core.redact import redact

    return json.loads(json.dumps(redact(value), default=str))


def stored_spec(study: optuna.Study) -> StudySpec | None:
    """The study's spec as parsed at launch (None for a study r3dnas did not make)."""
    from studies.study.spec import parse_spec

    raw = StudyRecord(study).spec
    if raw is None:
        return None
    return parse_spec(raw, source=f"study {study.study_name!r}", base_dir=Path.cwd())


def study_spec(study: optuna.Study) -> StudySpec:
    """:func:`stored_spec`, required: a study r3dnas did not make is an error."""
    spec = stored_spec(study)
    if spec is None:
        raise R3dnasError(f"study {study.study_name!r} stores no spec; it was not made by r3dnas")
    return spec


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print and log)."""
    from studies.core.redact import redact_url

    return redact_url(url)


def open_storage(url: str, settings: StorageSettings | None = None) -> BaseStorage:
    """An Optuna storage object for ``url`` (creating the sqlite/journal folder if needed)."""
    import optuna

    settings = settings or StorageSettings()
    folder = _storage_file(url)
    if folder is not None:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder belongs, no permission
            raise ConfigError(
                f"cannot open storage {display_url(url)}: cannot make the folder "
                f"{folder.parent}: {exc.strerror}"
            ) from None
    if url.startswith("journal://"):
        path = _journal_file(url)
        from optuna.storages import journal

        try:
            return optuna.storages.JournalStorage(journal.JournalFileBackend(str(path)))
        except ValueError as exc:  # json's decode errors: the file is not a journal
            raise ConfigError(
                f"cannot open storage {display_url(url)}: {path} is not an Optuna journal file "
                f"({type(exc).__name__}); name a new file or a journal"
            ) from None
    if url.startswith("postgresql"):
        from search_space._imports import require

        require("psycopg")
    try:
        with warnings.catch_warnings():
            # NOTE: heartbeats are "experimental" in Optuna since 2.9; we rely on them on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(url, settings)
    except Exception as exc:  # sqlalchemy raises many kinds; they all mean "can't open"
        raise ConfigError(
            f"cannot open storage {display_url(url)}: {type(exc).__name__}: "
            f"{display_url(str(exc).splitlines()[0] if str(exc) else '')}"
        ) from exc


def _rdb_storage(url: str, settings: StorageSettings) -> BaseStorage:
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    storage = optuna.storages.RDBStorage(
        url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
            max_retry=settings.max_retry
        ),
        engine_kwargs={"pool_pre_ping": True},
    )
    if storage.engine.name == "sqlite":
        _serialize_sqlite_transactions(storage.engine)
    return storage


SQLITE_BUSY_TIMEOUT_S = 60


def _serialize_sqlite_transactions(engine: Any) -> None:
    """Make every SQLite transaction take the write lock when it begins (``BEGIN IMMEDIATE``).

    Why: Python's sqlite3 driver only opens a transaction at the first write, so Optuna's
    "read the trial, then claim it" steps (taking a waiting trial, failing a stale one) are not
    atomic across processes: two workers on one ``.db`` file could both take the same enqueued
    trial and both run it (``tests/studies/study/test_storage.py`` shows the race). PostgreSQL
    locks the row (``SELECT ... FOR UPDATE``) and the journal replays one winner, so only SQLite
    needs this. Transactions are short, so workers wait on each other for milliseconds.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")

    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened before the listeners existed would skip them
