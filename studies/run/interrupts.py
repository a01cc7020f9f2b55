"""Ctrl-C and SIGTERM end a study cleanly, even when a library swallows the first signal.

Python turns SIGINT into a ``KeyboardInterrupt`` wherever the main thread happens to be; if
that is inside a library that catches it (an import guarded by a broad ``except``, a retry
loop), the interrupt is lost and the study runs on. So the handler also *records* the
request: the epoch hook raises it again at the next epoch boundary (the running trial is then
marked "interrupted"), and the run loop stops after the trial in any case.

One interrupt, one ``KeyboardInterrupt``: a signal that follows the first within
:data:`REPEAT_WINDOW_S` is recorded but not raised. Why: Ctrl-C in a terminal reaches a launcher
*and* its worker processes, and the launcher then stops its workers with SIGTERM; raising the
second signal inside the clean-up of the first (Optuna marking the trial failed) broke that
clean-up with a traceback. A signal after the window raises again (someone insists).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType

__all__ = ["interrupt_requested", "interrupts_as_keyboard_interrupt", "raise_if_interrupted"]

REPEAT_WINDOW_S = 5.0  # signals this soon after the first are taken as the same request
_requested: list[int] = []
_first_at: list[float] = []


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
        now = time.monotonic()
        _requested.append(signum)
        if _first_at and now - _first_at[0] < REPEAT_WINDOW_S:
            return  # the same request again: let the first one's clean-up finish
        _first_at[:] = [now]
        raise KeyboardInterrupt(f"signal {signum}")

    _requested.clear()
    _first_at.clear()
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
