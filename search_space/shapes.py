"""Shape inference for ResNet3d without building or running it.

Pure integer arithmetic over the :class:`~search_space.plan.NetworkPlan`: PyTorch's
convolution / max-pool output rule ``floor((L + 2p - d(k-1) - 1) / s) + 1`` applied layer by
layer. A size that collapses below 1 is reported as a :class:`ConfigError` naming the layer,
instead of mmaction2's run-time "Output size is too small".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from search_space.config import ResNet3dConfig
from search_space.errors import ConfigError, InputTooSmallError
from search_space.plan import BlockPlan, ConvSpec, NetworkPlan, PoolSpec, Triple, plan_network

__all__ = [
    "ShapeTable",
    "conv_output_size",
    "output_shapes",
    "parse_input_shape",
]

Shape5 = tuple[int, int, int, int, int]  # (N, C, T, H, W)
_NON_LOCAL_SUB_SAMPLE = PoolSpec(kernel=(1, 2, 2), stride=(1, 2, 2))


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's output length of a convolution or floor-mode pooling along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _apply(
    thw: Triple,
    kernel: Triple,
    stride: Triple,
    padding: Triple,
    dilation: Triple,
    where: str,
    input_shape: Sequence[int],
) -> Triple:
    out = tuple(
        conv_output_size(thw[a], kernel[a], stride[a], padding[a], dilation[a]) for a in range(3)
    )
    if min(out) < 1:
        raise InputTooSmallError(
            f"input_shape {list(input_shape)} collapses at {where}: (T, H, W) {list(thw)} -> "
            f"{list(out)}; use a longer/larger clip or smaller strides"
        )
    return out[0], out[1], out[2]


def _conv(thw: Triple, spec: ConvSpec, where: str, input_shape: Sequence[int]) -> Triple:
    return _apply(thw, spec.kernel, spec.stride, spec.padding, spec.dilation, where, input_shape)


def _pool(thw: Triple, spec: PoolSpec, where: str, input_shape: Sequence[int]) -> Triple:
    return _apply(thw, spec.kernel, spec.stride, spec.padding, (1, 1, 1), where, input_shape)


def block_output(thw: Triple, block: BlockPlan, where: str, input_shape: Sequence[int]) -> Triple:
    """(T, H, W) after one residual block; every conv is checked, not just the last."""
    main = thw
    for j, spec in enumerate(block.convs):
        main = _conv(main, spec, f"{where}.conv{j + 1}", input_shape)
    if block.downsample is not None:
        side = _conv(thw, block.downsample, f"{where}.downsample", input_shape)
        if side != main:  # pragma: no cover - the plan's rules make them equal
            raise AssertionError(f"{where}: residual {side} != main {main}")
    return main


@dataclass(frozen=True, slots=True)
class ShapeTable:
    """Output shape after each named point of the network, in forward order.

    Names are ``stem`` (conv1 + maxpool), ``layer1``, ``pool2`` (only with ``with_pool2``),
    ``layer2`` .. ``layerN``.
    """

    input_shape: Shape5
    rows: tuple[tuple[str, Shape5], ...]
    out_indices: tuple[int, ...]

    def __getitem__(self, name: str) -> Shape5:
        for row_name, shape in self.rows:
            if row_name == name:
                return shape
        names = ", ".join(n for n, _ in self.rows)
        raise KeyError(f"no shape named {name!r}; known: {names}")

    def __iter__(self) -> Iterator[tuple[str, Shape5]]:
        return iter(self.rows)

    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.rows)

    @property
    def outputs(self) -> tuple[Shape5, ...]:
        """The shapes ``ResNet3d.forward`` returns (stage 0's output is after pool2, if any)."""
        result = []
        for i in self.out_indices:
            name = "pool2" if i == 0 and "pool2" in self.names() else f"layer{i + 1}"
            result.append(self[name])
        return tuple(result)

    def format(self) -> str:
        """A plain-text table: one row per point, shapes written ``NxCxTxHxW``."""
        width = max(len(n) for n, _ in self.rows)
        lines = [f"{'input':<{width}}  {'x'.join(map(str, self.input_shape))}"]
        lines += [f"{n:<{width}}  {'x'.join(map(str, s))}" for n, s in self.rows]
        return "\n".join(lines)


def parse_input_shape(text: str | Sequence[int]) -> Shape5:
    """Accept ``"1,3,16,224,224"``, ``"1x3x16x224x224"`` or a sequence of five positive ints."""
    if isinstance(text, str):
        parts = text.replace("x", ",").split(",")
        try:
            values = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise ConfigError(
                f"input shape must be five ints N,C,T,H,W (e.g. 1,3,16,224,224); got {text!r}"
            ) from None
    else:
        values = list(text)
    if len(values) != 5 or any(not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(
            f"input shape must be five positive ints N,C,T,H,W (e.g. 1,3,16,224,224); got {text!r}"
        )
    return values[0], values[1], values[2], values[3], values[4]


def walk_shapes(plan: NetworkPlan, input_shape: Shape5) -> Iterator[tuple[str, Shape5]]:
    """Yield ``(name, shape)`` after the stem, each stage and pool2, in forward order."""
    n = input_shape[0]
    thw: Triple = (input_shape[2], input_shape[3], input_shape[4])
    thw = _conv(thw, plan.stem, "conv1", input_shape)
    if plan.pool1 is not None:
        thw = _pool(thw, plan.pool1, "maxpool", input_shape)
    yield "stem", (n, plan.stem.out_channels, *thw)
    for i, stage in enumerate(plan.stages):
        for b, block in enumerate(stage.blocks):
            thw = block_output(thw, block, f"{stage.name}.{b}", input_shape)
            if block.non_local and plan.non_local_sub_sample:
                where = f"{stage.name}.{b}.non_local_block (sub_sample pools H, W by 2)"
                _pool(thw, _NON_LOCAL_SUB_SAMPLE, where, input_shape)
        channels = stage.blocks[-1].out_channels
        yield stage.name, (n, channels, *thw)
        if i == 0 and plan.pool2 is not None:
            thw = _pool(thw, plan.pool2, "pool2 (after layer1; needs T >= 2)", input_shape)
            yield "pool2", (n, channels, *thw)


def output_shapes(config: ResNet3dConfig, input_shape: Sequence[int] | str) -> ShapeTable:
    """The shape after the stem, each stage and pool2 for ``input_shape`` (N, C, T, H, W).

    Raises:
        ConfigError: the channel count is not ``in_channels``.
        InputTooSmallError: some layer's output would be empty (e.g. pool2 with fewer than 2
            frames after layer1); a :class:`ConfigError` naming the layer.
    """
    shape = parse_input_shape(input_shape)
    if shape[1] != config.in_channels:
        raise ConfigError(
            f"input_shape has {shape[1]} channels but in_channels is {config.in_channels}"
        )
    rows = tuple(walk_shapes(plan_network(config), shape))
    return ShapeTable(input_shape=shape, rows=rows, out_indices=config.out_indices)
