"""Running ``r3dnas`` commands in-process the way a user's shell sees them, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from studies.cli import main


def run_cli(argv: list[str]) -> int:
    """The exit code of ``r3dnas argv``, argparse's usage errors (a ``SystemExit``) included."""
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def files_under(root: Path) -> list[str]:
    """Every path below ``root``, relative and sorted: what a command left behind."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
