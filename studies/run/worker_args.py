"""The ``r3dnas worker`` command line, written and read in one place.

``launch --workers N`` and ``ablate --workers N`` start worker processes by writing their
command line (:meth:`WorkerArgs.argv`); the CLI reads it back with the flags defined here
(:func:`add_worker_args`, :meth:`WorkerArgs.from_namespace`), so the two cannot drift apart. The
flags a worker shares with ``launch`` and ``ablate`` (study, storage, runs folder, wandb mode,
heartbeats) are defined here too, for all of them.

Pure argparse: the CLI imports this module to build its parser, so it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

__all__ = [
    "WorkerArgs",
    "add_heartbeat_args",
    "add_run_args",
    "add_study_args",
    "add_worker_args",
]

WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerArgs:
    """One worker's arguments; None leaves a setting to the worker's default."""

    study_name: str | None = None
    storage: str | None = None
    runs_dir: str | None = None
    device: str | None = None
    wandb_mode: str | None = None
    quiet: bool = False
    heartbeat_s: int | None = None
    grace_s: int | None = None
    stall_s: int | None = None

    def argv(self) -> list[str]:
        """The ``r3dnas worker`` arguments (after the program name) that mean these settings."""
        flags = [
            ("--study", self.study_name),
            ("--storage", self.storage),
            ("--runs-dir", self.runs_dir),
            ("--device", self.device),
            ("--wandb", self.wandb_mode),
            ("--heartbeat", self.heartbeat_s),
            ("--grace", self.grace_s),
            ("--stall", self.stall_s),
        ]
        args = ["worker"]
        for flag, value in flags:
            if value is not None:
                args += [flag, str(value)]
        return [*args, "--quiet"] if self.quiet else args

    def command(self) -> list[str]:
        """The whole command line of a worker process, run by this Python interpreter."""
        return [sys.executable, "-m", "studies.cli", *self.argv()]

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> WorkerArgs:
        """The settings of a parsed ``r3dnas worker`` command line."""
        return cls(
            study_name=args.study,
            storage=args.storage,
            runs_dir=args.runs_dir,
            device=args.device,
            wandb_mode=args.wandb,
            quiet=args.quiet,
            heartbeat_s=args.heartbeat,
            grace_s=args.grace,
            stall_s=args.stall,
        )


def add_study_args(parser: argparse.ArgumentParser) -> None:
    """``--study``, ``--storage``, ``--runs-dir``: which study, where."""
    parser.add_argument(
        "--study", help="study name (default: the spec's; to query, the storage's only study)"
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL: sqlite:///F.db, postgresql://..., journal://F.log "
        "(default $R3DNAS_STORAGE, else RUNS_DIR/<study>.db)",
    )
    parser.add_argument(
        "--runs-dir", help="folder of the default storages and of wandb runs (default runs)"
    )


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """``--wandb``, ``--quiet``: how a command that runs trials reports them."""
    parser.add_argument("--wandb", choices=WANDB_MODES, help="wandb mode (default offline)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_heartbeat_args(parser: argparse.ArgumentParser) -> None:
    """``--heartbeat``, ``--grace``: crash safety on RDB storages."""
    parser.add_argument("--heartbeat", type=int, help="heartbeat interval in s (default 10)")
    parser.add_argument("--grace", type=int, help="stale-trial grace period in s (default 30)")


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``r3dnas worker``: what :meth:`WorkerArgs.argv` writes."""
    add_study_args(parser)
    parser.add_argument(
        "--device", help="device for this worker, e.g. cuda:1 (default: the spec's)"
    )
    add_run_args(parser)
    add_heartbeat_args(parser)
    parser.add_argument(
        "--stall", type=int,
        help="give up waiting on a study where nothing changes for this many s "
        "(default: 10 grace periods, at least 60)",
    )  # fmt: skip
