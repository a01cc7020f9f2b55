"""``StrictConfig.check_ints``: the one rule every config uses for its integer fields."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from search_space.errors import ConfigError
from search_space.strict import StrictConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class _Config(StrictConfig):
    count: int = 1
    offset: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        self.check_ints(count=1, offset=0, limit=2)


def test_valid_ints_and_an_unset_optional_field_pass() -> None:
    assert _Config(count=3, offset=0, limit=None).limit is None
    assert _Config(limit=2).limit == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 0}, "count must be an int >= 1; got 0"),
        ({"offset": -1}, "offset must be an int >= 0; got -1"),
        ({"count": True}, "count must be an int >= 1; got True"),
        ({"count": 1.0}, "count must be an int >= 1; got 1.0"),
        ({"limit": 1}, "limit must be an int >= 2; got 1"),
        # the first field in the order given is the one named
        ({"count": 0, "offset": -1}, "count must be an int >= 1; got 0"),
    ],
)
def test_the_first_bad_field_is_named_with_its_minimum(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _Config(**changes)
    assert str(info.value) == message


def test_none_is_refused_where_the_default_is_not_none() -> None:
    with pytest.raises(ConfigError, match="count must be an int >= 1; got None"):
        _Config(count=None)  # type: ignore[arg-type]
