"""Which trained weights a study keeps, where they live, and finding them again.

Why: a trial can cost hours of GPU training; without its weights the best network of a study
could only be rebuilt untrained. ``[train] keep_checkpoints`` decides what is kept:

* ``"front"`` (default): the weights of the trials on the Pareto front (all objectives,
  completed feasible trials). After every completed trial, the files of completed trials that
  are no longer on the front are deleted, so the disk holds about one file per front point.
* ``"all"``: every completed trial's weights.
* ``"none"``: nothing is written.

Failed, pruned and infeasible trials keep nothing.

Where: ``<runs_dir>/<study>/checkpoints/<digest>-<signature>.pth``, one file per architecture
digest and training signature (which covers the seed), so a trial that reuses an earlier
measurement points to the earlier file. A trial records the path relative to the runs folder
in its user attribute ``checkpoint``; commands resolve it against ``--runs-dir``, else the runs
folder the study was launched with. Workers on several machines must share that folder (a
shared filesystem) for every trial's weights to be found and pruned.

The file is what mmengine's ``load_checkpoint`` and mmaction2's ``load_from`` read:
``{"state_dict": ..., "meta": ...}`` with mmaction2 ``Recognizer3D`` keys (``backbone.*``,
``cls_head.fc_cls.*``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_space.errors import ConfigError
from studies.core.defaults import RUNS_DIR
from studies.core.dominance import is_feasible, minimised, non_dominated
from studies.study.record import StudyRecord

if TYPE_CHECKING:
    import optuna
    from optuna.study import StudyDirection
    from optuna.trial import FrozenTrial

__all__ = [
    "CHECKPOINT_ATTR",
    "checkpoint_relpath",
    "front_numbers",
    "keep_policy",
    "prune_off_front",
    "trial_checkpoint",
]

CHECKPOINT_ATTR = "checkpoint"  # trial user attribute: the file, relative to the runs folder
_LOG = logging.getLogger(__name__)


def checkpoint_relpath(study_name: str, digest: str, signature: str) -> str:
    """The weights' path relative to the runs folder (POSIX separators, stored on trials)."""
    return f"{study_name}/checkpoints/{digest}-{signature}.pth"


def keep_policy(study: optuna.Study) -> str:
    """The study's ``[train] keep_checkpoints`` as stored at launch (default ``"front"``)."""
    raw = StudyRecord(study).spec or {}
    return str((raw.get("train") or {}).get("keep_checkpoints", "front"))


@dataclass(frozen=True, slots=True)
class _Member:
    number: int
    values: tuple[float, ...] | None  # None: completed but infeasible (never on the front)
    path: str | None


def _front_of(members: list[_Member], directions: list[StudyDirection]) -> set[int]:
    """Trial numbers of the non-dominated feasible members."""
    names = [d.name for d in directions]
    feasible = [m for m in members if m.values is not None]
    points = [minimised(m.values or (), names) for m in feasible]
    return {feasible[i].number for i in non_dominated(points)}


def _members(study: optuna.Study) -> tuple[list[_Member], list[FrozenTrial]]:
    """Completed trials as front candidates, and the trials still running or waiting."""
    from optuna.trial import TrialState

    members, unfinished = [], []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE and t.values is not None:
            values = tuple(float(v) for v in t.values) if is_feasible(t) else None
            members.append(_Member(t.number, values, t.user_attrs.get(CHECKPOINT_ATTR)))
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            unfinished.append(t)
    return members, unfinished


def front_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the trials on the study's Pareto front (all objectives), as stored now."""
    members, _ = _members(study)
    return _front_of(members, list(study.directions))


def prune_off_front(
    study: optuna.Study,
    *,
    runs_dir: str | Path,
    current: tuple[int, tuple[float, ...], str | None] | None = None,
) -> list[Path]:
    """Delete the weights of completed trials that are off the Pareto front; return them.

    Args:
        current: ``(number, values, checkpoint)`` of the trial that is finishing in this
            process: it counts as completed and feasible (storage still shows it running).

    Safe with several workers: only files of trials that storage shows completed and off the
    front are deleted; a file that a front trial (e.g. one that reused the measurement) or a
    running trial with the same digest and signature will use is kept.
    """
    members, unfinished = _members(study)
    if current is not None:
        number, values, path = current
        members = [m for m in members if m.number != number]
        members.append(_Member(number, tuple(values), path))
    front = _front_of(members, list(study.directions))
    current_number = None if current is None else current[0]
    keep = {m.path for m in members if m.number in front and m.path}
    for t in unfinished:
        digest, signature = t.user_attrs.get("digest"), t.user_attrs.get("signature")
        if t.number != current_number and digest and signature:
            keep.add(checkpoint_relpath(study.study_name, digest, signature))
    removed = []
    for m in members:
        if m.number in front or not m.path or m.path in keep:
            continue
        file = Path(runs_dir) / m.path
        if file.exists():
            file.unlink(missing_ok=True)
            _LOG.info("deleted %s: trial %d fell off the Pareto front", file, m.number)
            removed.append(file)
    return removed


def _runs_dirs(study: optuna.Study, runs_dir: str | Path | None) -> list[Path]:
    """Where to look, in order: the folder asked for, the study's own, then ``runs``."""
    candidates = [runs_dir, StudyRecord(study).runs_dir, RUNS_DIR]
    out: list[Path] = []
    for c in candidates:
        if c is not None and Path(c) not in out:
            out.append(Path(c))
    return out


def trial_checkpoint(
    study: optuna.Study, trial: FrozenTrial, *, runs_dir: str | Path | None = None
) -> Path:
    """The file holding ``trial``'s weights; a one-line :class:`ConfigError` says why not.

    Args:
        runs_dir: the study's runs folder on this machine (default: the one it was launched
            with, then ``runs``).
    """
    number = trial.number
    relpath = trial.user_attrs.get(CHECKPOINT_ATTR)
    policy = keep_policy(study)
    if not relpath:
        if policy == "none":
            raise ConfigError(
                f"trial {number} has no stored weights: the study's [train] keep_checkpoints "
                "is 'none' (set it to 'front' or 'all'); `r3dnas reproduce --retrain` trains "
                "it again"
            )
        raise ConfigError(
            f"trial {number} has no stored weights (measured by an r3dnas that kept none); "
            "`r3dnas reproduce --retrain` trains it again"
        )
    folders = _runs_dirs(study, runs_dir)
    for folder in folders:
        if (folder / relpath).is_file():
            return folder / relpath
    if policy == "front" and number not in front_numbers(study):
        raise ConfigError(
            f"trial {number}'s weights were deleted when it fell off the Pareto front "
            "(keep_checkpoints = 'front'); export a front trial (`r3dnas pareto`) or "
            "`r3dnas reproduce --retrain` it"
        )
    looked = ", ".join(str(f) for f in folders)
    raise ConfigError(
        f"trial {number}'s weights {relpath!r} are not under {looked}; pass --runs-dir with the "
        "study's runs folder (shared by all its workers)"
    )
