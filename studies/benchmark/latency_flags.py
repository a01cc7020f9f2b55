"""The timing protocol's command-line flags, written and read in one place.

``r3dnas latency-table`` and ``r3dnas table latency`` both time networks; they take the same
flags (threads, warm-up and timed runs, isolation, the drift reference) with their own
defaults, and turn them into one :class:`~runners.latency.measure.LatencyConfig`.

Pure argparse at import: the CLI imports this module to build its parser, so it imports nothing
heavy (``LatencyConfig`` is imported when a command runs).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runners.latency.measure import LatencyConfig

__all__ = ["add_latency_args", "latency_config"]


def add_latency_args(
    p: argparse.ArgumentParser, *, threads: int | None, warmup: int, repeats: int, what: str
) -> None:
    """The timing protocol's flags (see :func:`latency_config`), with this command's defaults."""
    p.add_argument(
        "--threads", type=int, default=threads,
        help=f"{what}CPU threads (default {threads or 'all this process may use'})",
    )  # fmt: skip
    p.add_argument("--warmup", type=int, default=warmup, help=f"{what}untimed runs ({warmup})")
    p.add_argument("--repeats", type=int, default=repeats, help=f"{what}timed runs ({repeats})")
    p.add_argument(
        "--isolation", default="pause", choices=("none", "lock", "pause"),
        help=f"{what}pause (default): registered study workers stop while timing",
    )  # fmt: skip
    p.add_argument(
        "--no-reference", action="store_true",
        help="time without the drift reference (runners.latency.reference): raw medians",
    )  # fmt: skip


def latency_config(args: argparse.Namespace, *, device: str, mode: str) -> LatencyConfig:
    """The timing protocol the latency flags ask for."""
    from runners.latency.measure import LatencyConfig

    return LatencyConfig(
        device=device,
        mode=mode,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        isolation=args.isolation,
        reference=not args.no_reference,
    )
