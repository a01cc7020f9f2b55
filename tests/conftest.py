"""Suite-wide isolation from other r3dnas processes and the user's caches on the same machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def _env_folder(name: str, folder: Path) -> Iterator[Path]:
    """Point ``name`` at ``folder`` for the session (inherited by the processes tests start)."""
    previous = os.environ.get(name)
    os.environ[name] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(autouse=True, scope="session")
def private_timing_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lock and worker registry of the suite's own (``R3DNAS_LOCK_DIR``), so a latency test
    never pauses a real study's workers on this machine, and a real study's timer never freezes
    the test run."""
    yield from _env_folder("R3DNAS_LOCK_DIR", tmp_path_factory.mktemp("r3dnas-lock"))


@pytest.fixture(autouse=True)
def no_debug_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--debug`` sets ``R3DNAS_DEBUG=1`` in the process (so the workers it starts inherit it);
    a test that ran it must not leave tracebacks on for the tests after it."""
    monkeypatch.delenv("R3DNAS_DEBUG", raising=False)


@pytest.fixture(autouse=True, scope="session")
def private_latency_baselines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The drift reference's baselines in a folder of the suite's own (``R3DNAS_CACHE_DIR``),
    never the user's ``~/.cache/r3dnas``."""
    yield from _env_folder("R3DNAS_CACHE_DIR", tmp_path_factory.mktemp("r3dnas-cache"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test (``pytestmark = pytest.mark.usefixtures(...)``): tiny
    networks and fvcore's real forwards run ~10x faster on a shared 2-core machine without
    OpenMP threads spinning against other processes; no result depends on the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The files whose tests run longest (minutes, under load: they run the README's commands, the
# benchmark scripts and real multi-process studies). Run first, so that with two processes
# (scripts/test.sh) the other process works through the short tests meanwhile instead of one
# process finishing a long test alone at the end.
LONG_FIRST = ("tests/studies/test_commands.py", "tests/test_benchmarks.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def long_first(item: pytest.Item) -> int:
        return 0 if item.nodeid.startswith(LONG_FIRST) else 1

    items.sort(key=long_first)  # NOTE: stable, so the order within each group is kept
