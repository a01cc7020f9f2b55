"""Suite-wide isolation from other r3dnas processes and the user's caches on the same machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_timing_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lock and worker registry of the suite's own (``R3DNAS_LOCK_DIR``, inherited by the
    processes tests start), so a latency test never pauses a real study's workers on this
    machine, and a real study's timer never freezes the test run."""
    folder = tmp_path_factory.mktemp("r3dnas-lock")
    previous = os.environ.get("R3DNAS_LOCK_DIR")
    os.environ["R3DNAS_LOCK_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("R3DNAS_LOCK_DIR", None)
    else:
        os.environ["R3DNAS_LOCK_DIR"] = previous


@pytest.fixture(autouse=True, scope="session")
def private_latency_baselines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The drift reference's baselines in a folder of the suite's own (``R3DNAS_CACHE_DIR``,
    inherited by the processes tests start), never the user's ``~/.cache/r3dnas``."""
    folder = tmp_path_factory.mktemp("r3dnas-cache")
    previous = os.environ.get("R3DNAS_CACHE_DIR")
    os.environ["R3DNAS_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("R3DNAS_CACHE_DIR", None)
    else:
        os.environ["R3DNAS_CACHE_DIR"] = previous
