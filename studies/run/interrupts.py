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

Deferred outside a trial's work. With ``deferred=True`` (the run loop) a first signal raises
only inside :func:`interruptible` (the objective of one trial); elsewhere it is recorded and
the loop stops at its next step. Why: a ``KeyboardInterrupt`` inside Optuna's ``ask`` or
``tell`` can leave a trial RUNNING that nobody runs (or lose a finished trial's result), and
the study then waits out a heartbeat grace period before retrying it (fresh-clone CI saw a
resumed ablation find no trial marked interrupted, on a machine where a tiny trial ends within
a fraction of a second of its first epoch).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "interrupt_requested",
    "interruptible",
    "interrupts_as_keyboard_interrupt",
    "raise_if_interrupted",
]

REPEAT_WINDOW_S = 5.0  # signals this soon after the first are taken as the same request
_requested: list[int] = []
_first_at: list[float] = []
_raise_now: list[bool] = [True]  # False while deferred and outside interruptible()


def interrupt_requested() -> bool:
    """Whether SIGINT or SIGTERM arrived inside :func:`interrupts_as_keyboard_interrupt`."""
    return bool(_requested)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` again if an interrupt was requested (and maybe swallowed)."""
    if _requested:
        raise KeyboardInterrupt(f"signal {_requested[0]}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Inside this block a signal raises at once, and one that came before it raises on entry
    (the block is a trial's work: stopping there loses nothing that is not rerun)."""
    was = _raise_now[0]
    _raise_now[0] = True
    try:
        raise_if_interrupted()
        yield
    finally:
        _raise_now[0] = was


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt(*, deferred: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` and are remembered while the block runs;
    with ``deferred`` a first signal raises only inside :func:`interruptible`."""

    def handler(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        _requested.append(signum)
        first = not _first_at
        if not first and now - _first_at[0] < REPEAT_WINDOW_S:
            return  # the same request again: let the first one's clean-up finish
        _first_at[:] = [now]
        if first and not _raise_now[0]:
            return  # recorded: the caller stops at its next step
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
    _raise_now[:] = [not deferred]
    try:
        yield
    finally:
        _raise_now[:] = [True]
        for sig, old in previous.items():
            signal.signal(sig, old)
