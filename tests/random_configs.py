"""Random valid ResNet3d keyword arguments and input shapes, shared by the property tests.

Seed-driven (``random.Random``) so a failing case is reproduced from its seed, which the tests
print in their ids. Channels are tiny so hundreds of networks build and run in seconds.
"""

from __future__ import annotations

import random
from typing import Any

from search_space import ARCH_SETTINGS, ConfigError, ResNet3dConfig, output_shapes


def _bits(rng: random.Random, n: int, p: float) -> tuple[int, ...]:
    return tuple(int(rng.random() < p) for _ in range(n))


def _per_block(rng: random.Random, blocks: tuple[int, ...], p: float) -> Any:
    """inflate / non_local in one of mmaction2's three spellings."""
    form = rng.random()
    if form < 0.2:
        return int(rng.random() < p)
    if form < 0.45:
        return _bits(rng, len(blocks), p)
    return tuple(_bits(rng, b, p) for b in blocks)


def random_kwargs(rng: random.Random, *, small_blocks: bool = True) -> dict[str, Any]:
    """One random mmaction2 ``ResNet3d`` kwargs dict (may still be invalid: see ``sample``)."""
    depth = rng.choice(tuple(ARCH_SETTINGS))
    num_stages = rng.choice((1, 2, 3, 4, 4, 4))
    kwargs: dict[str, Any] = {"depth": depth, "num_stages": num_stages}
    if small_blocks or rng.random() < 0.5:
        kwargs["stage_blocks"] = tuple(rng.randint(1, 3) for _ in range(num_stages))
        blocks = kwargs["stage_blocks"]
    else:
        blocks = ARCH_SETTINGS[depth][1][:num_stages]
    with_non_local = rng.random() < 0.3
    kwargs.update(
        base_channels=rng.choice((4, 8)),
        spatial_strides=tuple(rng.choice((1, 2, 2)) for _ in range(num_stages)),
        temporal_strides=tuple(rng.choice((1, 1, 2)) for _ in range(num_stages)),
        dilations=tuple(rng.choice((1, 1, 2)) for _ in range(num_stages)),
        conv1_kernel=(rng.choice((1, 3, 5)), rng.choice((1, 3, 7)), rng.choice((3, 7))),
        conv1_stride_s=rng.choice((1, 2)),
        conv1_stride_t=rng.choice((1, 2)),
        pool1_stride_s=rng.choice((1, 2)),
        pool1_stride_t=rng.choice((1, 2)),
        with_pool1=rng.random() < 0.8,
        with_pool2=rng.random() < 0.5,
        style=rng.choice(("pytorch", "caffe")),
        inflate_style=rng.choice(("3x1x1", "3x3x3")),
        inflate=_per_block(rng, blocks, 0.5),
        non_local=_per_block(rng, blocks, 0.4) if with_non_local else 0,
        non_local_cfg=(
            {
                "sub_sample": rng.random() < 0.5,
                "use_scale": rng.random() < 0.5,
                "mode": rng.choice(
                    ("embedded_gaussian", "dot_product", "gaussian", "concatenation")
                ),
                "reduction": rng.choice((1, 2, 4)),
            }
            if with_non_local
            else {}
        ),
        out_indices=tuple(sorted(rng.sample(range(num_stages), rng.randint(1, num_stages)))),
        frozen_stages=rng.randint(-1, num_stages),
        norm_eval=rng.random() < 0.3,
        with_cp=rng.random() < 0.3,
        zero_init_residual=rng.random() < 0.5,
    )
    return kwargs


# NOTE: a non-local block builds a (T*H*W)^2 attention map ("concatenation" even a
# channels x (T*H*W)^2 one); keep it small so hundreds of cases fit in memory.
_MAX_NON_LOCAL_POSITIONS = 512


def _non_local_positions(config: ResNet3dConfig, table: Any) -> int:
    worst = 0
    for i, stage in enumerate(config.non_local):
        if any(stage):
            _, _, t, h, w = table[f"layer{i + 1}"]
            worst = max(worst, t * h * w)
    return worst


def sample(seed: int, *, small_blocks: bool = True) -> tuple[dict[str, Any], tuple[int, ...]]:
    """A valid (kwargs, input shape) pair; deterministic in ``seed``."""
    rng = random.Random(seed)
    for _ in range(1000):
        kwargs = random_kwargs(rng, small_blocks=small_blocks)
        shape = (2, 3, rng.randint(2, 12), rng.randint(16, 64), rng.randint(16, 64))
        try:
            config = ResNet3dConfig(**kwargs)
            table = output_shapes(config, shape)
        except ConfigError:
            continue
        if _non_local_positions(config, table) > _MAX_NON_LOCAL_POSITIONS:
            continue
        return kwargs, shape
    raise RuntimeError(f"no valid configuration found for seed {seed}")
