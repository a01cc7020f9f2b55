"""Fixtures for the data tests: small real videos encoded with PyAV (tests/videos.py), and
mmaction2's own transforms (tests/mmaction_oracle.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from mmaction_oracle import load_transforms
from videos import STEP, encode_video


@pytest.fixture(scope="session")
def gray_step() -> int:
    """Gray levels between consecutive encoded frames."""
    return STEP


@pytest.fixture(scope="session", name="encode_video")
def encode_video_fixture() -> Callable[..., Path]:
    """:func:`encode_video` for tests that need their own encoder options."""
    return encode_video


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir: Path) -> Callable[..., Path]:
    """``make_video(name, num_frames, **encode_kwargs)`` -> path, encoded once per session."""

    @functools.cache
    def make(
        name: str, num_frames: int, codec: str = "libx264", width: int = 64, height: int = 48
    ) -> Path:
        return encode_video(video_dir / name, num_frames, codec=codec, width=width, height=height)

    return make


@pytest.fixture(scope="session")
def mmaction_loading() -> ModuleType:
    """mmaction2's ``loading.py``: holds ``SampleFrames``."""
    return load_transforms("loading.py")


@pytest.fixture(scope="session")
def mmaction_processing() -> ModuleType:
    """mmaction2's ``processing.py``: holds ``ThreeCrop``."""
    return load_transforms("processing.py")
