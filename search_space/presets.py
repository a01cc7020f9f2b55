"""Named reference configurations: plain functions in a dict, looked up by :func:`preset`.

Each returns a :class:`ResNet3dConfig`; use one as a study's base or as a reference point.
"""

from __future__ import annotations

from collections.abc import Callable

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError

__all__ = ["PRESETS", "preset", "preset_names"]


def _r50(
    *,
    conv1_kernel_t: int,
    stem_stride_t: int,
    inflate: int | tuple[int | tuple[int, ...], ...],
    with_pool2: bool = True,
    zero_init_residual: bool = True,
) -> ResNet3dConfig:
    """The R50 every preset here is: a (t, 7, 7) conv1 whose temporal stride pool1 repeats."""
    return ResNet3dConfig(
        depth=50,
        conv1_kernel=(conv1_kernel_t, 7, 7),
        conv1_stride_t=stem_stride_t,
        pool1_stride_t=stem_stride_t,
        inflate=inflate,
        with_pool2=with_pool2,
        zero_init_residual=zero_init_residual,
    )


def seed_r50() -> ResNet3dConfig:
    """The network printed in the seed: I3D stem, every block inflated '3x1x1'."""
    return _r50(conv1_kernel_t=5, stem_stride_t=2, inflate=1)


def i3d_r50() -> ResNet3dConfig:
    """mmaction2 ``configs/_base_/models/i3d_r50.py``'s backbone."""
    inflate = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
    return _r50(conv1_kernel_t=5, stem_stride_t=2, inflate=inflate, zero_init_residual=False)


def i3d_r50_heavy() -> ResNet3dConfig:
    """The "heavy" I3D R50 of mmaction2's ``i3d_imagenet-pretrained-r50-heavy`` config.

    Every block inflated, and no temporal stride in the stem (conv1 and pool1 keep T).
    """
    return _r50(
        conv1_kernel_t=5,
        stem_stride_t=1,
        inflate=(1, 1, 1, 1),
        with_pool2=True,
        zero_init_residual=False,
    )


def slowonly_r50() -> ResNet3dConfig:
    """SlowOnly R50 (mmaction2 ``slowonly_r50.py``): 2D early stages, temporal convs late."""
    return _r50(conv1_kernel_t=1, stem_stride_t=1, inflate=(0, 0, 1, 1), with_pool2=False)


PRESETS: dict[str, Callable[[], ResNet3dConfig]] = {
    "seed_r50": seed_r50,
    "i3d_r50": i3d_r50,
    "i3d_r50_heavy": i3d_r50_heavy,
    "slowonly_r50": slowonly_r50,
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def preset(name: str) -> ResNet3dConfig:
    """The preset called ``name``; an unknown name lists the valid ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
