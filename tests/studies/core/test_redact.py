"""Credentials never leave the process: URL passwords and secret-named keys become ``***``."""

from __future__ import annotations

import pytest

from studies.core.redact import MASK, is_secret_key, redact, redact_url


@pytest.mark.parametrize(
    ("expected", "url"),
    [
        ("postgresql://user:***@host/db", "postgresql://user:secret@host/db"),
        (
            "postgresql+psycopg://u:***@h:5432/db?sslmode=require",
            "postgresql+psycopg://u:p%40ss@h:5432/db?sslmode=require",
        ),
        # a raw '@' in the password: everything up to the last '@' is the password
        ("postgresql://u:***@h/db", "postgresql://u:p@ss@h/db"),
        ("mysql+pymysql://:***@h", "mysql+pymysql://:onlypw@h"),
        ("postgresql://h/db?user=u&password=***", "postgresql://h/db?user=u&password=hunter2"),
        (
            "postgresql://h/db?PASSWORD=***&sslmode=disable",
            "postgresql://h/db?PASSWORD=x&sslmode=disable",
        ),
        # nothing to hide
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://u:@h/db", "postgresql://u:@h/db"),
        ("sqlite:///runs/default.db", "sqlite:///runs/default.db"),
        ("sqlite:////abs/path/with:colon@sign.db", "sqlite:////abs/path/with:colon@sign.db"),
        ("journal:///shared/study.log", "journal:///shared/study.log"),
        ("runs/study.log", "runs/study.log"),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
        ("", ""),
    ],
)
def test_redact_url(expected: str, url: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_inside_text() -> None:
    message = (
        "could not connect to postgresql://alice:s3cr3t@db.lan:5432/optuna (refused); "
        "also tried 'redis://:tok3n@cache:6379/0'"
    )
    out = redact_url(message)
    assert "s3cr3t" not in out and "tok3n" not in out
    assert "postgresql://alice:***@db.lan:5432/optuna (refused)" in out
    assert "'redis://:***@cache:6379/0'" in out


@pytest.mark.parametrize(
    ("expected", "key"),
    [
        (True, "password"),
        (True, "db_password"),
        (True, "dbPassword"),
        (True, "WANDB_API_KEY"),
        (True, "api-key"),
        (True, "client_secret"),
        (True, "token"),
        (True, "auth_token"),
        (True, "accessToken"),
        (True, "aws_access_key_id"),
        (False, "max_tokens"),
        (False, "storage"),
        (False, "inflate"),
        (False, "key"),
        (False, 3),
    ],
)
def test_is_secret_key(expected: bool, key: object) -> None:
    assert is_secret_key(key) is expected


def test_redact_walks_nested_values_and_keeps_kinds() -> None:
    spec = {
        "study": {"name": "s", "storage": "postgresql://u:pw1@h/db", "n_trials": 4},
        "wandb": {"api_key": "abc123", "token": None},
        "workers": [{"storage": "postgresql://u:pw2@h/db"}, "sqlite:///a.db"],
        "shape": (1, 3, 8, 224, 224),
        "notes": ("see postgresql://u:pw3@h/db", 2.5, True),
    }
    out = redact(spec)
    assert out == {
        "study": {"name": "s", "storage": "postgresql://u:***@h/db", "n_trials": 4},
        "wandb": {"api_key": MASK, "token": None},
        "workers": [{"storage": "postgresql://u:***@h/db"}, "sqlite:///a.db"],
        "shape": (1, 3, 8, 224, 224),
        "notes": ("see postgresql://u:***@h/db", 2.5, True),
    }
    assert "pw1" in spec["study"]["storage"]  # the input is not modified


def test_redact_leaves_non_containers_alone() -> None:
    sentinel = object()
    assert redact(sentinel) is sentinel
    assert redact(3.5) == 3.5
    assert redact(None) is None
