"""Latency that does not depend on load: one timer at a time per machine, other workers paused.

A study's workers share a machine; if one times a network while another trains, the number
measures the other's load (19.49 ms against 7.85 ms alone, in this project's own history). So
every latency measurement on a machine runs inside :func:`quiet_machine`:

1. **Serialised.** An exclusive ``flock`` on ``<lock dir>/timing.lock``: no two processes on the
   machine time at once (the lock is released by the kernel if its holder dies).
2. **Others paused** (``isolation = "pause"``). Processes registered with
   :func:`register_worker` (a study's trial registers itself while it trains, through
   :func:`pausable`; an idle process, such as a notebook between trials, is never paused) are
   stopped with ``SIGSTOP`` (with their children, e.g. DataLoader workers) for the timed runs
   only, and continued with ``SIGCONT`` afterwards.
   A watchdog child process continues them if the timer dies while they are stopped (it
   notices its parent's pipe closing), so a killed timer never leaves a study frozen.

Only the timed runs are inside: building the network and ``torch.compile``'s first call happen
before, so the pause lasts warm-up + repeats (seconds), well under Optuna's heartbeat grace
period. Processes that are not r3dnas workers (another user's job) are not controlled.

The lock directory is machine-local: ``$R3DNAS_LOCK_DIR``, else ``<tmp>/r3dnas-<uid>``. It must
not be on a network filesystem (the lock and the pause are per machine by design).

**Scope.** A timer pauses only the workers of its own study: a process names its study with
:func:`pause_scope` (the study code does, for training and timing alike), registers under
``<lock dir>/workers/<scope>/`` and pauses only that folder's processes. Processes that name no
study share one scope of their own (a benchmark script and the worker it starts). Pausing every
registered worker of the user on the machine, whatever its study (the behaviour before issue 20),
is an explicit setting: ``R3DNAS_PAUSE_SCOPE=machine``. The lock stays machine-wide.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from search_space.errors import ConfigError

__all__ = [
    "ISOLATIONS",
    "PAUSE_SCOPE_ENV",
    "lock_dir",
    "pausable",
    "pause_scope",
    "quiet_machine",
    "register_worker",
    "registered_workers",
    "unregister_worker",
]

# "none": time as is; "lock": one timer at a time; "pause": and registered workers stopped.
ISOLATIONS = ("none", "lock", "pause")

_log = logging.getLogger(__name__)

_WATCHDOG = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
paused = []
def resume():
    for pid in paused:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
for line in sys.stdin:
    words = line.split()
    if words and words[0] == "P":
        paused = [int(w) for w in words[1:]]
    elif words and words[0] == "R":
        paused = []
    sys.stdout.write("ok\n")
    sys.stdout.flush()
resume()
"""


PAUSE_SCOPE_ENV = "R3DNAS_PAUSE_SCOPE"
_scope = "no-study"  # the study this process works for (see the module docstring)


def lock_dir() -> Path:
    """Where the machine's timing lock and worker registry live (created on use)."""
    env = os.environ.get("R3DNAS_LOCK_DIR")
    base = Path(env) if env else Path(tempfile.gettempdir()) / f"r3dnas-{os.getuid()}"
    (base / "workers").mkdir(parents=True, exist_ok=True)
    return base


def _scope_dir(scope: str) -> Path:
    """``workers/<readable name>-<hash>``: any study name becomes a safe folder name."""
    import hashlib

    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in scope)[:40]
    digest = hashlib.sha1(scope.encode()).hexdigest()[:8]
    folder = lock_dir() / "workers" / f"{readable}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def pause_scope(study: str) -> Iterator[None]:
    """Inside the block this process works for ``study``: it registers (:func:`pausable`)
    under that study, and its timers pause that study's registered workers only."""
    global _scope
    previous, _scope = _scope, study
    try:
        yield
    finally:
        _scope = previous


def _machine_wide() -> bool:
    return os.environ.get(PAUSE_SCOPE_ENV, "") == "machine"


# ---------------------------------------------------------------------- the registry
def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``None``: gone or unknown).

    With the pid it identifies a process: a pid reused by another process has another start.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return None
    # NOTE: field 2 (comm) may hold spaces and parentheses; fields after the last ')' are fixed.
    return stat.rsplit(")", 1)[1].split()[19]


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


_registered: Path | None = None


def register_worker() -> None:
    """Mark this process as a worker that timers on this machine pause (idempotent).

    The entry is removed at exit; an entry whose process is gone (or whose pid now belongs to
    another process) is ignored and cleaned up by the next timer.
    """
    global _registered
    if _registered is not None or not Path("/proc/self/stat").exists():
        return
    entry = _scope_dir(_scope) / str(os.getpid())
    entry.write_text(_start_time(os.getpid()) or "", encoding="ascii")
    _registered = entry
    atexit.register(unregister_worker)


@contextlib.contextmanager
def pausable() -> Iterator[None]:
    """Registered (:func:`register_worker`) for the block only: timers on this machine may
    pause this process while it does background work such as training, and never otherwise.
    Leaves an existing registration alone."""
    if _registered is not None:
        yield
        return
    register_worker()
    try:
        yield
    finally:
        unregister_worker()


def unregister_worker() -> None:
    """Remove this process's registry entry (if any)."""
    global _registered
    if _registered is not None:
        _registered.unlink(missing_ok=True)
        _registered = None


def registered_workers() -> list[int]:
    """Pids of the live registered workers of this process's study (every study's with
    ``R3DNAS_PAUSE_SCOPE=machine``); stale entries are removed."""
    pids = []
    if _machine_wide():
        entries = [
            e for d in (lock_dir() / "workers").iterdir() if d.is_dir() for e in d.iterdir()
        ]
    else:
        entries = list(_scope_dir(_scope).iterdir())
    for entry in entries:
        try:
            pid = int(entry.name)
            recorded = entry.read_text(encoding="ascii").strip()
        except (ValueError, OSError):
            continue
        current = _start_time(pid)
        if current is None or (recorded and current != recorded):
            entry.unlink(missing_ok=True)
            continue
        pids.append(pid)
    return sorted(pids)


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(name))
    return out


def _to_pause(keep: set[int]) -> list[int]:
    """Registered workers and their descendants (DataLoader workers, ...), parents first,
    except the pids in ``keep`` (this process and its watchdog: a timer never stops itself)."""
    children = _children()
    order: list[int] = []
    seen: set[int] = set(keep)
    stack = list(reversed(registered_workers()))
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        order.append(pid)
        stack.extend(reversed(children.get(pid, [])))
    return order


# ---------------------------------------------------------------------- the watchdog
class _Watchdog:
    """A child process that continues paused pids if this process dies while they are paused."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # NOTE: a Ctrl-C to our process group does not kill it
        )

    def tell(self, line: str) -> None:
        """Send one line and wait for the acknowledgement (so it knows before we act)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        self.process.stdout.readline()

    def alive(self) -> bool:
        return self.process.poll() is None


_watchdog: _Watchdog | None = None


def _get_watchdog() -> _Watchdog:
    global _watchdog
    if _watchdog is None or not _watchdog.alive():
        _watchdog = _Watchdog()
    return _watchdog


def _signal_all(pids: list[int], sig: signal.Signals) -> list[int]:
    done = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            done.append(pid)
        except ProcessLookupError:
            continue
        except PermissionError:
            _log.warning("cannot signal process %d (another user's?): not paused", pid)
    return done


def _wait_stopped(pids: list[int], timeout_s: float = 2.0) -> None:
    """Wait until every pid reports state T (stopped) or is gone: SIGSTOP is asynchronous."""
    deadline = time.monotonic() + timeout_s
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if _state(p) not in (None, "T", "t", "Z", "X")]
        if pending:
            time.sleep(0.001)


# ---------------------------------------------------------------------- the context
@contextlib.contextmanager
def quiet_machine(isolation: str = "pause") -> Iterator[list[int]]:
    """Run the body as the machine's only timer, with registered workers paused.

    Args:
        isolation: ``"none"`` (nothing), ``"lock"`` (exclusive timing lock only) or
            ``"pause"`` (the lock, and every registered worker stopped while inside).

    Yields:
        The pids that were paused (empty for ``none`` and ``lock``).

    Raises:
        ConfigError: an unknown ``isolation``.
    """
    if isolation not in ISOLATIONS:
        raise ConfigError(
            f"isolation must be one of {', '.join(map(repr, ISOLATIONS))}; got {isolation!r}"
        )
    if isolation == "none":
        yield []
        return
    with open(lock_dir() / "timing.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if isolation == "lock" or not Path("/proc").is_dir():
                yield []
                return
            watchdog = _get_watchdog()
            keep = {os.getpid(), watchdog.process.pid}
            pids = _to_pause(keep)
            if not pids:
                yield []
                return
            watchdog.tell("P " + " ".join(map(str, pids)))
            paused: list[int] = []
            try:
                paused = _signal_all(pids, signal.SIGSTOP)
                # NOTE: once more, for children started between the listing and the stop.
                late = [p for p in _to_pause(keep) if p not in paused]
                if late:
                    watchdog.tell("P " + " ".join(map(str, paused + late)))
                    paused += _signal_all(late, signal.SIGSTOP)
                _wait_stopped(paused)
                yield paused
            finally:
                _signal_all(paused, signal.SIGCONT)
                watchdog.tell("R")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
