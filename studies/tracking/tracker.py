"""wandb tracking of studies: one run per trial, one run for the study's Pareto front.

The Optuna storage is the source of truth; wandb is a view of it. So this layer is built to
fail soft: every wandb call is wrapped, and an error (wandb missing, a full disk, a value wandb
cannot serialise, a server that refuses us) becomes one logged warning, a message in
:attr:`StudyTracker.errors`, and a no-op, never an exception that could lose a trial.

wandb defaults to offline mode: runs go to ``<dir>/wandb/offline-run-*`` with no network and
no prompt, and ``wandb sync`` uploads them later. Everything sent goes through
:func:`studies.core.redact.redact` first, and wandb's own environment metadata (which copies
``sys.argv``, where a ``--storage`` URL with a password may sit) is switched off.

wandb keeps one active run per process, so use one :class:`StudyTracker` per worker process
and finish each :class:`TrialRun` before starting the next.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal, Self, TypeVar, get_args

from search_space._imports import require
from search_space.errors import ConfigError
from search_space.strict import StrictConfig
from studies.core.defaults import RUNS_DIR
from studies.core.redact import redact

__all__ = ["TRIAL_STATES", "StudyTracker", "TrackingConfig", "TrialRun", "open_tracker"]

_log = logging.getLogger(__name__)

WandbMode = Literal["offline", "online", "disabled"]
TrialState = Literal["complete", "failed", "infeasible", "pruned", "reused"]
TRIAL_STATES: tuple[str, ...] = get_args(TrialState)
_MODES: tuple[str, ...] = get_args(WandbMode)
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackingConfig(StrictConfig):
    """Where and how a study is tracked in wandb (the spec's ``[wandb]`` section, ``--wandb``).

    Attributes:
        mode: ``offline`` writes runs to disk for a later ``wandb sync``; ``online`` streams
            them (needs ``WANDB_API_KEY`` or ``wandb login``; never prompts); ``disabled``
            imports nothing and writes nothing.
        project: The wandb project.
        dir: The directory that receives ``wandb/``; ``None`` means the study's run directory.
        entity: The wandb team or user; ``None`` means the account's default.
    """

    config_name = "tracking"
    config_where = " in section [wandb]"

    mode: WandbMode = "offline"
    project: str = "r3dnas"
    dir: str | Path | None = None
    entity: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.mode not in _MODES:
            allowed = ", ".join(repr(m) for m in _MODES)
            raise ConfigError(f"wandb.mode must be one of {allowed}; got {self.mode!r}")
        if not isinstance(self.project, str) or not self.project.strip():
            raise ConfigError(f"wandb.project must be a non-empty string; got {self.project!r}")
        if self.dir is not None and not isinstance(self.dir, str | Path):
            raise ConfigError(f"wandb.dir must be a path or None; got {self.dir!r}")
        if self.entity is not None and (not isinstance(self.entity, str) or not self.entity):
            raise ConfigError(
                f"wandb.entity must be a non-empty string or None; got {self.entity!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back."""
        return {
            "mode": self.mode,
            "project": self.project,
            "dir": None if self.dir is None else str(self.dir),
            "entity": self.entity,
        }


def open_tracker(
    cfg: TrackingConfig, *, study_name: str, mode: str | None, run_dir: str | Path
) -> StudyTracker:
    """The tracker of a study: ``cfg`` (the spec's ``[wandb]``) with ``--wandb MODE`` applied
    when given, writing ``wandb/`` under ``run_dir``."""
    settings = cfg.to_dict() | {"dir": str(run_dir)}
    if mode is not None:
        settings["mode"] = mode
    return StudyTracker(TrackingConfig.from_dict(settings), study_name=study_name)


class _ClosesOnExit:
    """``with x:`` hands ``x`` back, and on the way out calls :meth:`_on_exit` (each class
    decides what closing means: the tracker stops wandb's service, a run finishes)."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_exit(exc)

    def _on_exit(self, exc: BaseException | None) -> None:
        raise NotImplementedError


class StudyTracker(_ClosesOnExit):
    """Opens the wandb runs of one study and swallows every wandb failure.

    Call order for a study loop::

        tracker = StudyTracker(cfg, study_name=name, run_dir=run_dir)
        for each trial:
            run = tracker.trial_run(trial.number, config=..., params=..., spec=...)
            run.log_epoch(epoch, {...})           # per epoch, if it trains
            run.finish(state="complete", summary={...}, reason=None)
        tracker.log_study(pareto_rows, summary)   # once, at the end
        tracker.close()                           # flushes the .wandb logs to disk

    Attributes:
        config: The tracking configuration.
        study_name: The wandb group of every run.
        dir: Where ``wandb/`` goes.
        errors: One message per wandb call that failed, oldest first.
    """

    def __init__(
        self,
        cfg: TrackingConfig,
        *,
        study_name: str,
        run_dir: str | Path | None = None,
    ) -> None:
        """Prepare tracking; wandb itself is imported at the first run, not here.

        Args:
            cfg: Mode, project, directory and entity.
            study_name: The study; becomes each run's group.
            run_dir: The study's run directory, used when ``cfg.dir`` is ``None``; defaults to
                ``./runs/<study_name>``.
        """
        self.config = cfg
        self.study_name = study_name
        self.dir = Path(cfg.dir if cfg.dir is not None else run_dir or Path(RUNS_DIR) / study_name)
        self.errors: list[str] = []
        self._wandb: ModuleType | None = None
        self._ready: bool | None = None  # None: not tried yet; False: gave up
        self._warned: set[str] = set()

    @property
    def enabled(self) -> bool:
        """False once tracking is disabled, or after wandb could not be set up."""
        return self.config.mode != "disabled" and self._ready is not False

    def trial_run(
        self,
        number: int,
        *,
        config: dict[str, Any],
        params: dict[str, Any],
        spec: dict[str, Any],
    ) -> TrialRun:
        """Start the wandb run of trial ``number`` (a no-op run if tracking is off or fails).

        The run's config holds ``arch`` (the canonical ResNet3d config dict), ``params`` (the
        sampled trial parameters), ``spec`` (the study spec) and the trial number, all
        redacted. Its name is ``trial-<number>``, its group the study name, its job type
        ``trial``.
        """
        run_config = redact(
            {
                "study": self.study_name,
                "trial": number,
                "arch": config,
                "params": params,
                "spec": spec,
            }
        )
        run = self._init(name=f"trial-{number}", job_type="trial", config=run_config)
        return TrialRun(self, run, number=number)

    def log_study(
        self,
        pareto_rows: list[dict[str, Any]],
        summary: dict[str, Any],
        *,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Write the study-level run: the Pareto table under ``pareto`` and ``summary``.

        Rows may have different keys (the columns are their union, in first-seen order);
        values that are not str, int, float or bool (e.g. a config dict) are stored as JSON.
        """
        run = self._init(name="study", job_type="study", config=redact(config or {}))
        if run is None:
            return
        wandb = self._wandb
        assert wandb is not None  # _init returned a run, so wandb is loaded

        def write() -> None:
            columns, data = _table(redact(pareto_rows))
            run.log({"pareto": wandb.Table(columns=columns, data=data)})
            run.summary.update({"n_pareto": len(pareto_rows), **redact(summary)})

        self._call("log_study", write)
        self._call("finish study run", lambda: run.finish(exit_code=0))

    def close(self) -> None:
        """Shut wandb's service down so every run's ``.wandb`` log is complete on disk.

        Call it once, after the last run: a later run starts a new service (~0.5 s).
        """
        if self._wandb is not None:
            self._call("teardown", self._wandb.teardown)

    def _on_exit(self, exc: BaseException | None) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], _T]) -> _T | None:
        """Run one wandb call; on failure record it, warn once per message, return None.

        ``KeyboardInterrupt`` and ``SystemExit`` pass through: Ctrl-C belongs to the study loop.
        """
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - wandb failures must never reach the study
            message = redact(f"wandb {what} failed: {type(exc).__name__}: {exc}")
            self.errors.append(message)
            if message not in self._warned:
                self._warned.add(message)
                _log.warning("%s (the trial is still recorded in the Optuna storage)", message)
            return None

    def _setup(self) -> bool:
        """Import wandb and check the directory and credentials, once."""
        if self._ready is not None:
            return self._ready
        self._ready = bool(self._call("setup", self._try_setup))
        return self._ready

    def _try_setup(self) -> bool:
        # NOTE: wandb silently falls back to /tmp when `dir` is unusable; refuse instead, so
        # runs never land somewhere nobody looks.
        self.dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.dir, os.W_OK):
            raise PermissionError(f"wandb.dir {str(self.dir)!r} is not writable")
        wandb = require("wandb")
        if self.config.mode == "online" and not wandb.login(prompt=False, verify=False):
            raise RuntimeError(
                "wandb.mode 'online' needs credentials: set WANDB_API_KEY or run `wandb login`"
                ", or use --wandb offline"
            )
        self._wandb = wandb
        return True

    def _init(self, *, name: str, job_type: str, config: dict[str, Any]) -> Any:
        if self.config.mode == "disabled" or not self._setup():
            return None
        wandb = self._wandb
        assert wandb is not None

        def init() -> Any:
            settings = wandb.Settings(
                silent=True,
                console="off",  # the trial's stdout is ours; don't copy it into the run
                x_disable_meta=True,  # its metadata copies sys.argv: --storage URLs
                disable_git=True,
                save_code=False,
            )
            return wandb.init(
                project=self.config.project,
                entity=self.config.entity,
                group=self.study_name,
                name=name,
                job_type=job_type,
                config=config,
                dir=str(self.dir),
                mode=self.config.mode,
                reinit="finish_previous",
                settings=settings,
            )

        run = self._call(f"init of run {name!r}", init)
        if run is None:
            # NOTE: an init that failed once (no network in online mode: a 90 s timeout each
            # time) would fail for every trial; stop trying rather than slow the study down.
            self._ready = False
            _log.warning("wandb tracking is off for the rest of study %r", self.study_name)
        return run


class TrialRun(_ClosesOnExit):
    """The wandb run of one trial; every method is a no-op when the run could not start."""

    def __init__(self, tracker: StudyTracker, run: Any, *, number: int) -> None:
        self._tracker = tracker
        self._run = run
        self.number = number
        self.finished = False

    @property
    def active(self) -> bool:
        """True while a real wandb run is open."""
        return self._run is not None and not self.finished

    @property
    def run_id(self) -> str | None:
        """wandb's id of the run (names its ``offline-run-*`` directory), or None."""
        return None if self._run is None else str(self._run.id)

    def log_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Log one epoch's metrics at wandb step ``epoch`` (increasing from call to call)."""
        if not self.active:
            return
        row = {"epoch": epoch, **redact(metrics)}
        # NOTE: without commit=True wandb holds an explicit step's row open until the next step
        # or finish(), and the held row then overwrites the final metrics in the summary.
        self._tracker._call(
            f"log of trial {self.number} epoch {epoch}",
            lambda: self._run.log(row, step=epoch, commit=True),
        )

    def finish(
        self,
        *,
        state: TrialState,
        summary: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        """Put the final metrics, ``state`` and ``reason`` in the summary and close the run.

        A ``failed`` trial finishes with exit code 1, so wandb shows it as failed; the others
        (``complete``, ``infeasible``, ``pruned``, ``reused``) with 0. Calling it twice is a
        no-op.

        Raises:
            ConfigError: ``state`` is not one of :data:`TRIAL_STATES` (a bug in the caller).
        """
        if state not in TRIAL_STATES:
            allowed = ", ".join(repr(s) for s in TRIAL_STATES)
            raise ConfigError(f"state must be one of {allowed}; got {state!r}")
        if not self.active:
            self.finished = True
            return
        self.finished = True
        final = {**redact(summary), "state": state}
        if reason is not None:
            final["reason"] = redact(reason)
        self._tracker._call(
            f"summary of trial {self.number}", lambda: self._run.summary.update(final)
        )
        exit_code = 1 if state == "failed" else 0
        self._tracker._call(
            f"finish of trial {self.number}", lambda: self._run.finish(exit_code=exit_code)
        )

    def _on_exit(self, exc: BaseException | None) -> None:
        """Finish a run the caller left open: as failed, with the exception as the reason."""
        if self.finished:
            return
        reason = "trial run left open" if exc is None else f"{type(exc).__name__}: {exc}"
        self.finish(state="failed", summary={}, reason=reason)


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns (union of keys, first-seen order) and cells that wandb.Table can type."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns, [[_cell(row.get(column)) for column in columns] for row in rows]


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        # NOTE: the table file is JSON; keep inf/nan readable instead of invalid JSON.
        return value if math.isfinite(value) else str(value)
    return json.dumps(value, sort_keys=True, default=str)
