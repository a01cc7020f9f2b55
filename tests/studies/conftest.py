"""Storage URLs for the tests that run over every real storage backend.

PostgreSQL runs when ``R3DNAS_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one on
loopback); otherwise those cases skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

POSTGRES = os.environ.get("R3DNAS_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if request.param == "journal":
        return f"journal://{tmp_path / 'study.log'}"
    if not POSTGRES:
        pytest.skip("set R3DNAS_TEST_POSTGRES_URL to run the PostgreSQL storage tests")
    return POSTGRES
