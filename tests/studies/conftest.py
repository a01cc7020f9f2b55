"""Storage URLs for the tests that run over every real storage backend.

PostgreSQL runs when ``R3DNAS_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one on
loopback); otherwise those cases skip with the reason. The suite runs in two processes
(pytest-xdist), which share that one database: a PostgreSQL case holds a file lock while it
runs, so two of them never meet in it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES = os.environ.get("R3DNAS_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    if request.param == "journal":
        yield f"journal://{tmp_path / 'study.log'}"
        return
    if not POSTGRES:
        pytest.skip("set R3DNAS_TEST_POSTGRES_URL to run the PostgreSQL storage tests")
    lock = Path(tempfile.gettempdir()) / f"r3dnas-test-postgres-{os.getuid()}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield POSTGRES


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no ``R3DNAS_STORAGE``, where a command's defaults
    (``runs/``, the study database) land and can be listed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("R3DNAS_STORAGE", raising=False)
    return tmp_path
