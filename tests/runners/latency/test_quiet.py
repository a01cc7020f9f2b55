"""Latency that does not depend on load: timers on one machine never overlap, and a real
training worker is stopped while another process times (and continued afterwards, even when
the timer is killed). Mechanism only: the ±10% property is measured by
benchmarks/bench_latency_load.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners.latency.measure import LatencyConfig, measure_latency
from runners.latency.quiet import (
    quiet_machine,
    register_worker,
    registered_workers,
    unregister_worker,
)
from search_space import ConfigError, ResNet3dConfig

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# A real training process: registers as a study worker does, then trains a small Conv3d net
# with SGD, appending the monotonic time of every finished step to a file.
TRAINER = """
import sys, time, torch
from runners.latency.quiet import register_worker
torch.set_num_threads(1)
register_worker()
model = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.LazyLinear(2))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(2, 3, 4, 16, 16), torch.tensor([0, 1])
with open(sys.argv[1], "a") as log:
    while True:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        log.write(f"{time.monotonic_ns()}\\n"); log.flush()
"""

# A timer: waits for the go file, then times `rounds` windows under the lock.
TIMER = """
import importlib.util, sys, time
from pathlib import Path
# NOTE: runners/latency/quiet.py by path, without the runners package (and torch): a fast start.
spec = importlib.util.spec_from_file_location("quiet", "runners/latency/quiet.py")
quiet = importlib.util.module_from_spec(spec); spec.loader.exec_module(quiet)
quiet_machine = quiet.quiet_machine
out, go, rounds, isolation = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
with open(out, "w") as f:
    for _ in range(rounds):
        with quiet_machine(isolation):
            start = time.monotonic_ns(); print("paused", flush=True); time.sleep(0.05)
            if rounds == 1:
                time.sleep(600)
            f.write(f"{start} {time.monotonic_ns()}\\n"); f.flush()
"""


def _env(lock_dir: Path) -> dict[str, str]:
    return {**os.environ, "R3DNAS_LOCK_DIR": str(lock_dir), "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def _steps(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait(condition, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def trainer(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen, Path, Path]]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("quiet")
    lock_dir, log = tmp / "locks", tmp / "steps.log"
    process = subprocess.Popen([sys.executable, "-c", TRAINER, str(log)], env=_env(lock_dir))
    try:
        _wait(lambda: len(_steps(log)) >= 3)
        yield process, lock_dir, log
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait()


def test_two_timers_never_time_at_once(tmp_path: Path) -> None:
    go = tmp_path / "go"
    timers = [
        subprocess.Popen(
            [sys.executable, "-c", TIMER, str(tmp_path / f"w{i}"), str(go), "6", "lock"],
            env=_env(tmp_path / "locks"),
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        for i in range(2)
    ]
    for timer in timers:
        assert timer.stdout is not None and timer.stdout.readline().strip() == "ready"
    go.touch()
    for timer in timers:
        assert timer.wait(timeout=120) == 0
    windows = sorted(
        tuple(map(int, line.split())) for i in range(2)
        for line in (tmp_path / f"w{i}").read_text().splitlines()
    )  # fmt: skip
    assert len(windows) == 12
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert end <= start, "two processes timed at the same time"


def test_a_training_worker_is_stopped_while_another_process_times(
    trainer: tuple[subprocess.Popen, Path, Path],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process, lock_dir, log = trainer
    monkeypatch.setenv("R3DNAS_LOCK_DIR", str(lock_dir))
    assert registered_workers() == [process.pid]
    with quiet_machine("pause") as paused:
        start = time.monotonic_ns()
        assert _state(process.pid) == "T"
        time.sleep(0.5)
        end = time.monotonic_ns()
    assert paused == [process.pid]
    before = len(_steps(log))
    _wait(lambda: len(_steps(log)) > before + 2)  # it trains again
    assert not [t for t in _steps(log) if start < t < end], "the worker trained while timed"
    # a latency measurement pauses it the same way, and says so
    result = measure_latency(
        ResNet3dConfig(depth=18, stage_blocks=(1, 1, 1, 1), base_channels=4),
        (1, 3, 4, 16, 16),
        LatencyConfig(
            device="cpu",
            warmup=0,
            repeats=2,
            blocks=2,
            threads=1,
            isolation="pause",
            reference=False,
        ),
    )
    assert result.paused_workers == 1 and result.isolation == "pause"
    # "lock" serialises timers but leaves workers running
    with quiet_machine("lock") as paused:
        assert paused == [] and _state(process.pid) != "T"


def test_a_killed_timer_leaves_no_worker_stopped(
    trainer: tuple[subprocess.Popen, Path, Path],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    process, lock_dir, log = trainer
    go = tmp_path / "go"
    go.touch()
    timer = subprocess.Popen([sys.executable, "-c", TIMER, str(tmp_path / "w"), str(go), "1",
                              "pause"], env=_env(lock_dir), stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)  # fmt: skip
    assert timer.stdout is not None
    assert timer.stdout.readline().strip() == "ready"
    assert timer.stdout.readline().strip() == "paused"
    assert _state(process.pid) == "T"
    timer.kill()  # SIGKILL: no finally runs in the timer
    timer.wait()
    _wait(lambda: _state(process.pid) != "T", timeout_s=10)
    before = len(_steps(log))
    _wait(lambda: len(_steps(log)) > before, timeout_s=30)


def test_registry_and_isolation_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R3DNAS_LOCK_DIR", str(tmp_path))
    register_worker()
    try:
        assert os.getpid() in registered_workers()
        with quiet_machine("pause") as paused:  # a timer never stops itself
            assert paused == []
    finally:
        unregister_worker()
    assert registered_workers() == []
    (scope_dir,) = (tmp_path / "workers").iterdir()  # this process's (no study's) scope
    (scope_dir / "999999999").write_text("1")  # a process that is gone
    assert registered_workers() == [] and not (scope_dir / "999999999").exists()
    with pytest.raises(ConfigError, match="isolation must be one of 'none', 'lock', 'pause'"):
        with quiet_machine("exclusive"):
            pass
    with pytest.raises(ConfigError, match="isolation"):
        LatencyConfig(isolation="quiet")


# A process that asked to be paused, for study argv[1] (or for no study: "-").
SCOPED = """
import sys, time
from runners.latency.quiet import pause_scope, register_worker
if sys.argv[1] == "-":
    register_worker()
else:
    with pause_scope(sys.argv[1]):
        register_worker()
print("registered", flush=True)
while True:
    time.sleep(0.01)
"""


def test_a_timer_pauses_only_its_own_studys_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another study's worker (or a notebook) of the same user is never stopped, unless
    R3DNAS_PAUSE_SCOPE=machine asks for the machine-wide pause."""
    from runners.latency.quiet import pause_scope

    lock_dir = tmp_path / "locks"
    monkeypatch.setenv("R3DNAS_LOCK_DIR", str(lock_dir))
    procs = {}
    for scope in ("study-a", "study-b", "-"):
        proc = subprocess.Popen([sys.executable, "-c", SCOPED, scope], env=_env(lock_dir),
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "registered"
        procs[scope] = proc
    try:
        with pause_scope("study-a"), quiet_machine("pause") as paused:
            states = {scope: _state(p.pid) for scope, p in procs.items()}
        assert paused == [procs["study-a"].pid]
        stopped = {scope for scope, state in states.items() if state in ("T", "t")}
        assert stopped == {"study-a"}, states
        with quiet_machine("pause") as paused:  # a timer of no study: the no-study workers
            assert paused == [procs["-"].pid]
        monkeypatch.setenv("R3DNAS_PAUSE_SCOPE", "machine")
        with pause_scope("study-a"), quiet_machine("pause") as paused:
            assert sorted(paused) == sorted(p.pid for p in procs.values())
    finally:
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
