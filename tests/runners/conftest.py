"""Fixtures for the data tests: small real videos encoded with PyAV, and mmaction2's SampleFrames.

Every frame ``i`` of an encoded video is a uniform gray of intensity ``i * STEP``, so the frame
index survives lossy coding, resizing and cropping and can be read back from decoded pixels
(the ``gray_step`` fixture gives the step).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

STEP = 6  # gray levels between consecutive frames; 40 frames reach 234
MAX_FRAMES = 256 // STEP


def encode_video(
    path: Path,
    num_frames: int,
    *,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``num_frames`` frames, frame ``i`` a uniform gray ``i * STEP``, to ``path``."""
    av = pytest.importorskip("av")
    if num_frames > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames keep distinct gray levels")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # NOTE: small GOP with B-frames, so seeking and frame reordering are exercised.
        stream.options = options if options is not None else {"g": "8", "bf": "2"}
        # NOTE: high quality so every gray level survives coding (mpeg4's default rate does not).
        stream.bit_rate = 4_000_000
        for i in range(num_frames):
            rgb = np.full((height, width, 3), i * STEP, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


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


def _mmaction_transforms(file: str) -> ModuleType:
    """One of mmaction2's ``datasets/transforms/*.py`` files, loaded by path as an oracle.

    Loaded by path like tests/mmaction_oracle.py, because ``import mmaction`` asserts mmcv < 2.2.
    """
    spec = importlib.util.find_spec("mmaction")
    if spec is None or spec.origin is None:
        pytest.skip("mmaction2 is not installed (pip install --no-deps mmaction2)")
    name = f"_mmaction_{file.removesuffix('.py')}_oracle"
    if name in sys.modules:  # executing it twice raises "already registered"
        return sys.modules[name]
    import mmcv

    real_version = mmcv.__version__
    mmcv.__version__ = "2.1.0"
    try:
        import mmaction.registry  # noqa: F401
        import mmaction.utils  # noqa: F401
    finally:
        mmcv.__version__ = real_version
    path = Path(spec.origin).parent / "datasets" / "transforms" / file
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mmaction_loading() -> ModuleType:
    """mmaction2's ``loading.py``: holds ``SampleFrames``."""
    return _mmaction_transforms("loading.py")


@pytest.fixture(scope="session")
def mmaction_processing() -> ModuleType:
    """mmaction2's ``processing.py``: holds ``ThreeCrop``."""
    return _mmaction_transforms("processing.py")
