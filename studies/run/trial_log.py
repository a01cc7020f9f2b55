"""One line per trial that did not complete; Optuna's tracebacks go to a log file.

Why: Optuna logs every failed trial as a warning with its traceback (about 20 lines), and a
study in which a constraint rules out most of the space printed 1,556 lines before it gave up
(issue 20). An infeasible trial is expected, not a bug: the user needs its reason, which the
trial already records (user attribute ``about``). So while trials run, Optuna's per-trial
warnings ("Trial N failed with parameters ... because of ...", "Trial N failed with value
None.") go to ``<runs dir>/<study>/trials.log`` instead of the terminal, and the loop prints
the trial's ``about`` line. ``--debug`` (environment ``R3DNAS_DEBUG=1``, which the workers a
command starts inherit) keeps Optuna's output on the terminal as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna

__all__ = ["DEBUG_ENV", "log_path", "trial_warnings_to_file", "verbose"]

DEBUG_ENV = "R3DNAS_DEBUG"
# Optuna's per-trial warnings, and the logger that emits them (optuna/study/_optimize.py).
_EMITTER = "optuna.study._optimize"
_PER_TRIAL = re.compile(r"Trial \d+ failed (with parameters|with value|because)")


def verbose() -> bool:
    """Whether Optuna's tracebacks stay on the terminal (``--debug``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def log_path(study: optuna.Study) -> Path:
    """Where a study's trial tracebacks go: ``<runs dir>/<study>/trials.log``."""
    return StudyRecord(study).runs_dir_or(None) / study.study_name / "trials.log"


class _ToFile(logging.Filter):
    """Drops Optuna's per-trial warnings from the terminal, writing them to a file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.formatter = logging.Formatter("[%(levelname)s %(asctime)s] %(message)s")

    def filter(self, record: logging.LogRecord) -> bool:
        if not _PER_TRIAL.match(record.getMessage()):
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(self.formatter.format(record) + "\n")
        except OSError:
            return True  # NOTE: no log file: better the traceback on the terminal than lost
        return False


@contextlib.contextmanager
def trial_warnings_to_file(study: optuna.Study) -> Iterator[Path | None]:
    """Inside the block, Optuna's per-trial warnings go to :func:`log_path` (yielded), not to
    the terminal; with ``--debug`` nothing changes (yields None)."""
    if verbose():
        yield None
        return
    path = log_path(study)
    # NOTE: on the logger that emits them, so each record is seen once, before any handler
    # (Optuna's, or the root's that pytest or a notebook add).
    logger = logging.getLogger(_EMITTER)
    filt = _ToFile(path)
    logger.addFilter(filt)
    try:
        yield path
    finally:
        logger.removeFilter(filt)
