"""Load mmaction2's own ``ResNet3d`` as a test oracle (never shipped, never copied).

mmaction2 1.2 cannot be imported normally here: ``mmaction.models`` fails on a missing
localizer module and ``mmaction/__init__`` asserts ``mmcv < 2.2``. We import only
``mmaction.registry`` and execute ``models/backbones/resnet3d.py`` by path, once per process
(executing it twice raises "already registered").
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@functools.cache
def load_reference() -> ModuleType:
    """The reference ``resnet3d`` module, or skip the test when mmaction2 is absent."""
    spec = importlib.util.find_spec("mmaction")
    if spec is None or spec.origin is None:
        pytest.skip("mmaction2 is not installed (pip install --no-deps mmaction2)")
    import mmcv

    real_version = mmcv.__version__
    # NOTE: mmaction/__init__ asserts mmcv < 2.2.0; mmcv-lite 2.2 works for resnet3d.py.
    mmcv.__version__ = "2.1.0"
    try:
        import mmaction.registry  # noqa: F401
        import mmaction.utils  # noqa: F401
    finally:
        mmcv.__version__ = real_version
    path = Path(spec.origin).parent / "models" / "backbones" / "resnet3d.py"
    module_spec = importlib.util.spec_from_file_location("_mmaction_resnet3d_oracle", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module
