"""Load mmaction2's own code as a test oracle (never shipped, never copied).

mmaction2 1.2 cannot be imported normally here: ``mmaction.models`` fails on a missing
localizer module, ``mmaction.datasets`` on scipy, and ``mmaction/__init__`` asserts
``mmcv < 2.2``. We import only ``mmaction.registry`` and execute single files by path, once per
process (executing one twice raises "already registered").
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TRANSFORM_FILES = ("loading.py", "processing.py", "formatting.py")


def _exec_mmaction_file(relative: str, name: str) -> ModuleType:
    """Execute ``mmaction/<relative>`` as module ``name`` (cached in ``sys.modules``)."""
    spec = importlib.util.find_spec("mmaction")
    if spec is None or spec.origin is None:
        pytest.skip("mmaction2 is not installed (pip install --no-deps mmaction2)")
    if name in sys.modules:
        return sys.modules[name]
    import mmcv

    real_version = mmcv.__version__
    # NOTE: mmaction/__init__ asserts mmcv < 2.2.0; mmcv-lite 2.2 works for the files we load.
    mmcv.__version__ = "2.1.0"
    try:
        import mmaction.registry  # noqa: F401
        import mmaction.utils  # noqa: F401
    finally:
        mmcv.__version__ = real_version
    module_spec = importlib.util.spec_from_file_location(name, Path(spec.origin).parent / relative)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


@functools.cache
def load_reference() -> ModuleType:
    """The reference ``resnet3d`` module, or skip the test when mmaction2 is absent."""
    return _exec_mmaction_file("models/backbones/resnet3d.py", "_mmaction_resnet3d_oracle")


def load_transforms(file: str) -> ModuleType:
    """One of mmaction2's ``datasets/transforms/*.py`` files (``loading.py`` holds
    ``SampleFrames`` and the PyAV readers, ``processing.py`` the crops, ``formatting.py``
    ``FormatShape`` and ``PackActionInputs``)."""
    return _exec_mmaction_file(
        f"datasets/transforms/{file}", f"_mmaction_{file.removesuffix('.py')}_oracle"
    )


def build_transform(cfg: dict[str, Any]) -> Any:
    """An mmaction2 transform from its config dict, found in the transform files by class name
    (mmaction's registry would import all of ``mmaction.datasets``, which fails here)."""
    kwargs = dict(cfg)
    name = kwargs.pop("type")
    for file in TRANSFORM_FILES:
        module = load_transforms(file)
        if hasattr(module, name):
            return getattr(module, name)(**kwargs)
    raise KeyError(f"no mmaction2 transform {name!r} in {', '.join(TRANSFORM_FILES)}")


def run_pipeline(steps: list[dict[str, Any]], results: dict[str, Any]) -> dict[str, Any]:
    """Run mmaction2's transforms ``steps`` (config dicts) over ``results``."""
    for step in steps:
        results = build_transform(step).transform(results)
    return results


def _exec_mmaction_models_file(folder: str, file: str) -> ModuleType:
    """Execute ``mmaction/models/<folder>/<file>`` inside a stand-in package, so its relative
    imports (``from .base import ...``) resolve without importing ``mmaction.models``."""
    spec = importlib.util.find_spec("mmaction")
    if spec is None or spec.origin is None:
        pytest.skip("mmaction2 is not installed (pip install --no-deps mmaction2)")
    load_reference()  # imports mmaction's registries with the version check side-stepped
    package_name = f"_mmaction_{folder}_oracle"
    name = f"{package_name}.{file.removesuffix('.py')}"
    if name in sys.modules:
        return sys.modules[name]
    directory = Path(spec.origin).parent / "models" / folder
    package = sys.modules.get(package_name)
    if package is None:
        package = ModuleType(package_name)
        package.__path__ = [str(directory)]
        sys.modules[package_name] = package
    module_spec = importlib.util.spec_from_file_location(name, directory / file)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def load_reference_head() -> type:
    """mmaction2's ``I3DHead`` class (build it with ``loss_cls={"type": <a loss class>}``: the
    registry name would make mmengine import ``mmaction.models``, which fails here)."""
    from mmaction.registry import MODELS

    registered = MODELS.module_dict.get("I3DHead")
    if registered is not None:  # another test module executed i3d_head.py already
        return registered
    return _exec_mmaction_models_file("heads", "i3d_head.py").I3DHead


def load_reference_loss() -> type:
    """mmaction2's ``CrossEntropyLoss`` class."""
    from mmaction.registry import MODELS

    registered = MODELS.module_dict.get("CrossEntropyLoss")
    if registered is not None:
        return registered
    return _exec_mmaction_models_file("losses", "cross_entropy_loss.py").CrossEntropyLoss


def load_i3d_head() -> type:
    """mmaction2's ``I3DHead`` class (see :func:`load_reference_head`)."""
    return load_reference_head()
