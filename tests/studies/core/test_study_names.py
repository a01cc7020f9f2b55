"""Study names become file names under the runs folder: the ones that would escape it are
refused, with the field that named them."""

from __future__ import annotations

import pytest

from search_space import ConfigError
from studies.core.study_names import MAX_STUDY_NAME, check_study_name


@pytest.mark.parametrize(
    "name", ["tiny", "bench-v2", "bench_v2.seed2", "cpu default", "a" * MAX_STUDY_NAME, "été"]
)
def test_ordinary_names_pass_unchanged(name: str) -> None:
    assert check_study_name(name, field="--study") == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("a/b", "path separator"),
        ("../up", "path separator"),
        ("a\\b", "path separator"),
        (".hidden", "starts with a dot"),
        ("..", "starts with a dot"),
        (" padded", "space"),
        ("padded ", "space"),
        ("tab\there", "control character"),
        ("a" * (MAX_STUDY_NAME + 1), f"{MAX_STUDY_NAME + 1} characters"),
    ],
)
def test_names_that_leave_the_runs_folder_are_refused(name: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="study name becomes a file name") as info:
        check_study_name(name, field="[study] name")
    message = str(info.value)
    assert message.startswith(f"[study] name {name!r}") and problem in message
    assert "\n" not in message
