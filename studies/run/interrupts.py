"""Ctrl-C and SIGTERM end a study cleanly, even when a library swallows the first signal.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be; if
that is inside a library that catches it (an import guarded by a broad ``except``, a retry
loop), the interrupt is lost and the study runs on. So the handler also *records* the
request: the epoch hook raises it again at the next epoch boundary (the running trial is then
marked "interrupted"), and the run loop stops after the trial in any case.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["interrupt_requested", "interrupts_as_keyboard_interrupt", "raise_if_interrupted"]

_requested: list[int] = []


def interrupt_requested() -> bool:
    """Whether SIGINT or SIGTERM arrived inside :func:`interrupts_as_keyboard_interrupt`."""
    return bool(_requested)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` again if an interrupt was requested (and maybe swallowed)."""
    if _requested:
        raise KeyboardInterrupt(f"signal {_requested[0]}")


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` and are remembered while the block runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _requested.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    _requested.clear()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
