"""SearchSpace: TOML loading, sampling through a real Optuna study, grid, size, feasibility."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from search_space import ConfigError, ResNet3d, ResNet3dConfig, output_shapes, preset
from search_space.space import (
    Choice,
    Fixed,
    InfeasibleConfig,
    SearchSpace,
    expand_pattern,
    load_space,
    shipped_spaces,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SMALL_BASE = ResNet3dConfig(depth=50, stage_blocks=(1, 1, 1, 1), base_channels=4)

# A space with infeasible corners: T=4 collapses before pool2 when conv1 and pool1 both stride
# time, and a ResNet-18's layer1 has no downsample to carry a temporal stride.
RISKY = SearchSpace(
    base=SMALL_BASE,
    input_shape=(1, 3, 4, 32, 32),
    dimensions=(
        Choice("depth", (18, 50)),
        Choice("conv1_stride_t", (1, 2)),
        Choice("pool1_stride_t", (1, 2)),
        Choice("with_pool2", (True, False)),
        Choice("layer1.temporal_stride", (1, 2)),
        Choice("layer2.inflate", ("none", "all")),
        Choice("inflate_style", ("3x1x1", "3x3x3")),
        Choice("layer3.non_local", ("none", "all")),
    ),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def _by_hand(base: ResNet3dConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The ResNet3d kwargs for ``params``, written out independently of space.py."""
    kwargs = base.to_dict()
    temporal = list(base.temporal_strides)
    for name, value in params.items():
        if name in ("depth", "conv1_stride_t", "pool1_stride_t", "with_pool2", "inflate_style"):
            kwargs[name] = value
        elif name == "conv1_kernel_t":
            kwargs["conv1_kernel"] = [value, *base.conv1_kernel[1:]]
        elif name == "layer1.temporal_stride":
            temporal[0] = value
        elif name.endswith((".inflate", ".non_local")):
            stage = int(name[5]) - 1
            key = name.split(".")[1]
            per_stage = [list(s) for s in kwargs[key]]
            per_stage[stage] = {"none": 0, "all": 1}[value]
            kwargs[key] = per_stage
        else:
            raise AssertionError(f"test helper does not know {name}")
    kwargs["temporal_strides"] = temporal
    return kwargs


# ---------------------------------------------------------------------- sampling
def test_sample_uses_readable_parameter_names_and_builds_what_was_suggested() -> None:
    space = load_space("default")
    assert space.param_names() == (
        "layer1.inflate",
        "layer2.inflate",
        "layer3.inflate",
        "layer4.inflate",
        "inflate_style",
        "with_pool2",
        "conv1_kernel_t",
    )
    study = _study()
    study.enqueue_trial({f"layer{i}.inflate": "none" for i in range(1, 5)})
    uninflated = 0
    for _ in range(20):
        trial = study.ask()
        config = space.sample(trial)
        inflated = any(any(stage) for stage in config.inflate)
        uninflated += not inflated
        # the space is conditional: inflate_style is suggested only when it shapes the network
        expected = set(space.param_names()) - (set() if inflated else {"inflate_style"})
        assert set(trial.params) == expected
        assert all(
            isinstance(d, optuna.distributions.CategoricalDistribution)
            for d in trial.distributions.values()
        )
        for i in range(4):
            assert (
                config.inflate[i]
                == ({"none": (0,), "all": (1,)}[trial.params[f"layer{i + 1}.inflate"]])
            )
        if inflated:
            assert config.inflate_style == trial.params["inflate_style"]
        assert config.with_pool2 is trial.params["with_pool2"]
        assert config.conv1_kernel == (trial.params["conv1_kernel_t"], 7, 7)
        assert (config.base_channels, config.stage_blocks) == (8, (1, 1, 1, 1))
        assert space.config_from_params(trial.params) == config
        study.tell(trial, 0.0)
    assert uninflated >= 1


def test_no_sampled_config_is_invalid_for_the_input_shape() -> None:
    study = _study()
    outcomes = {"feasible": 0, "infeasible": 0}
    for n in range(300):
        trial = study.ask()
        try:
            config = RISKY.sample(trial)
        except InfeasibleConfig as exc:
            outcomes["infeasible"] += 1
            assert exc.reason and exc.params == trial.params
            # independently: these parameters really give an invalid or too small network
            with pytest.raises(ConfigError):
                output_shapes(
                    ResNet3dConfig(**_by_hand(SMALL_BASE, trial.params)), (1, 3, 4, 32, 32)
                )
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        outcomes["feasible"] += 1
        assert config == ResNet3dConfig(**_by_hand(SMALL_BASE, trial.params))
        table = output_shapes(config, RISKY.input_shape)
        if n % 30 == 0:  # and the real network runs, with the predicted shape
            model = ResNet3d.from_config(config).eval()
            with torch.no_grad():
                out = model(torch.randn(RISKY.input_shape))
            assert tuple(out.shape) == table.outputs[0]
        study.tell(trial, 0.0)
    assert outcomes["feasible"] > 50 and outcomes["infeasible"] > 50, outcomes


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"conv1_stride_t": 2, "pool1_stride_t": 2, "with_pool2": True}, "pool2"),
        ({"depth": 18, "layer1.temporal_stride": 2}, r"temporal_strides\[0\]"),
    ],
)
def test_infeasible_combinations_say_why(params: dict[str, Any], reason: str) -> None:
    with pytest.raises(InfeasibleConfig, match=reason) as info:
        RISKY.config_from_params(params)
    assert isinstance(info.value, ConfigError)
    assert info.value.params == params
    assert "\n" not in str(info.value)


def test_config_from_params_rejects_what_the_space_cannot_produce() -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'layer9.inflate'.*depth"):
        RISKY.config_from_params({"layer9.inflate": "all"})
    with pytest.raises(ConfigError, match="conv1_stride_t must be one of 1, 2; got 3"):
        RISKY.config_from_params({"conv1_stride_t": 3})
    with pytest.raises(ConfigError, match="with_pool2 must be one of True, False; got 1"):
        RISKY.config_from_params({"with_pool2": 1})
    fixed = SearchSpace(
        base=SMALL_BASE, input_shape=(1, 3, 8, 32, 32), dimensions=(Fixed("with_pool2", False),)
    )
    assert fixed.config_from_params({}).with_pool2 is False
    with pytest.raises(ConfigError, match="with_pool2 is fixed to False"):
        fixed.config_from_params({"with_pool2": True})


# ---------------------------------------------------------------------- patterns and depth
@pytest.mark.parametrize(
    ("pattern", "blocks", "expected"),
    [
        ("none", 3, (0, 0, 0)),
        ("all", 2, (1, 1)),
        ("alternate", 4, (1, 0, 1, 0)),
        ("alternate", 3, (1, 0, 1)),
        ("alternate_odd", 3, (0, 1, 0)),
        ("alternate_odd", 1, (0,)),
        ("0110", 4, (0, 1, 1, 0)),
    ],
)
def test_expand_pattern(pattern: str, blocks: int, expected: tuple[int, ...]) -> None:
    assert expand_pattern(pattern, blocks) == expected


def test_depth_choice_reexpands_family_patterns_of_the_base() -> None:
    space = SearchSpace(
        base=preset("i3d_r50"),
        input_shape=(1, 3, 8, 64, 64),
        dimensions=(Choice("depth", (50, 101)), Choice("layer4.inflate", ("none", "010"))),
    )
    deep = space.config_from_params({"depth": 101, "layer4.inflate": "010"})
    assert deep.inflate[2] == expand_pattern("alternate", 23)  # i3d's layer3 is 'alternate'
    assert deep.inflate[3] == (0, 1, 0)
    assert space.config_from_params({"depth": 50}) == preset("i3d_r50")


def test_a_base_pattern_that_is_no_family_cannot_follow_a_depth_change() -> None:
    base = ResNet3dConfig(inflate=((1, 1, 1), (1, 1, 0, 0), 1, 1))
    with pytest.raises(ConfigError, match=r"inflate\[1\].*layer2.inflate"):
        SearchSpace(
            base=base, input_shape=(1, 3, 8, 64, 64), dimensions=(Choice("depth", (50, 152)),)
        )


# ---------------------------------------------------------------------- grid and size
def test_grid_is_the_full_factorial_with_everything_else_at_base() -> None:
    space = load_space("inflation")
    factors = ["layer2.inflate", "inflate_style", "with_pool2"]
    rows = space.grid(factors)
    assert len(rows) == 2 * 2 * 2
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)
    assert all(list(r) == factors for r in rows)
    for row in rows:
        config = space.config_from_params(row)
        assert config.inflate[0] == space.base.inflate[0]  # not a factor: base value
        assert config.inflate[1] == expand_pattern(row["layer2.inflate"], 1)
    assert len(space.grid(space.param_names())) == 2**6
    assert space.grid([]) == [{}]


def test_grid_names_the_valid_factors() -> None:
    with pytest.raises(
        ConfigError, match="unknown factor 'inflate'.*layer1.inflate, layer2.inflate"
    ):
        load_space("inflation").grid(["inflate"])
    with pytest.raises(ConfigError, match="repeat"):
        load_space("inflation").grid(["with_pool2", "with_pool2"])


def _network_signature(config: ResNet3dConfig, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """What the network is, found by building it: the parameter layout, and the outputs in
    eval and train mode for weights drawn from that layout (equal networks, equal signatures).

    Train mode matters: conv1 striding time equals pool1 striding it in eval mode, but the
    batch statistics (and the FLOPs) differ, so they are different networks.
    """
    model = ResNet3d.from_config(config).eval()
    state = model.state_dict()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for value in state.values():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
        eval_out = model(x)
        train_out = model.train()(x)
    layout = tuple((k, tuple(v.shape)) for k, v in state.items())
    return layout, eval_out.numpy().tobytes(), train_out.numpy().tobytes()


def test_size_counts_distinct_feasible_networks_by_brute_force() -> None:
    shape = (2, 3, 4, 16, 16)
    levels = {
        "layer1.inflate": ("none", "all", "alternate_odd"),
        "inflate_style": ("3x1x1", "3x3x3"),
        "with_pool2": (True, False),
        "conv1_stride_t": (1, 2),
        "pool1_stride_t": (1, 2),
    }
    base = SMALL_BASE.replace(inflate=0)
    space = SearchSpace(
        base=base,
        input_shape=shape,
        dimensions=tuple(Choice(name, values) for name, values in levels.items()),
    )
    one_block = {"none": 0, "all": 1, "alternate_odd": 0}  # the families on a 1-block stage
    signatures = set()
    for values in itertools.product(*levels.values()):
        inflate, style, pool2, conv1_t, pool1_t = values
        config = base.replace(
            inflate=(one_block[inflate], 0, 0, 0),
            inflate_style=style,
            with_pool2=pool2,
            conv1_stride_t=conv1_t,
            pool1_stride_t=pool1_t,
        )
        try:
            output_shapes(config, shape)
        except ConfigError:
            continue
        signatures.add(_network_signature(config, shape))
    # 3 inflations (inflate_style matters only when inflated) x 7 feasible stems
    # (with pool2, striding T twice before it leaves 1 frame)
    assert len(signatures) == 3 * 7
    assert space.size() == len(signatures)


def test_size_refuses_spaces_beyond_its_limit() -> None:
    with pytest.raises(ConfigError, match="192 combinations"):
        load_space("default").size(limit=100)


def test_shipped_small_spaces_have_their_documented_sizes() -> None:
    assert load_space("default").size() == 186  # 2^4 x 2 styles - 2 (nothing inflated) ... x 6
    assert load_space("inflation").size() == 62  # 2^4 x 2 - 2


@pytest.mark.slow
def test_shipped_i3d_space_size() -> None:
    assert load_space("i3d_r50").size() == 24544


# ---------------------------------------------------------------------- files
def test_shipped_spaces_load_and_contain_their_base() -> None:
    assert shipped_spaces() == ("bench", "bench_v2", "default", "i3d_r50", "inflation")
    i3d = load_space("i3d_r50")
    assert i3d.input_shape == (1, 3, 32, 224, 224)
    assert i3d.base == preset("i3d_r50")
    i3d_params = {
        "layer1.inflate": "all",
        "layer2.inflate": "alternate",
        "layer3.inflate": "alternate",
        "layer4.inflate": "alternate_odd",
    }
    assert i3d.config_from_params(i3d_params) == preset("i3d_r50")
    for name in shipped_spaces():
        space = load_space(name)
        assert space.name == name and space.description
        space.check(space.fixed_base())
    assert load_space("bench").size() == 372  # the tabular benchmark's networks (issue #11)
    assert load_space("bench_v2").size() == 192  # the second table's: 2 x 3 x 2 x 2 x 2^3


def test_load_space_lists_the_shipped_names() -> None:
    with pytest.raises(
        ConfigError,
        match="unknown search space 'nope'.*bench, bench_v2, default, i3d_r50, inflation",
    ):
        load_space("nope")


def test_round_trip_through_dict_and_json() -> None:
    for space in (RISKY, *(load_space(n) for n in shipped_spaces())):
        again = SearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
        assert again == space
        assert again.to_dict() == space.to_dict()


def test_base_forms(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "small.json").write_text(SMALL_BASE.to_json())
    shape = "input_shape = [1, 3, 8, 32, 32]\n"
    forms = {
        'base = "configs/small.json"\n': SMALL_BASE,
        'base = "slowonly_r50"\n': preset("slowonly_r50"),
        '[base]\npreset = "i3d_r50"\nbase_channels = 16\n': preset("i3d_r50").replace(
            base_channels=16
        ),
        "[base]\ndepth = 50\nstage_blocks = [1, 1, 1, 1]\nbase_channels = 4\n": SMALL_BASE,
    }
    for text, expected in forms.items():
        path = tmp_path / "space.toml"
        path.write_text(shape + text)
        assert SearchSpace.from_toml(path).base == expected, text


SHAPE = "input_shape = [1, 3, 8, 64, 64]\n"
BAD_FILES = [
    ('base = "i3d_r50"\n' + SHAPE + "search = 1\n", r"unknown key\(s\) 'search'; allowed: name"),
    ('base = "i3d_r51"\n' + SHAPE, "base: unknown preset 'i3d_r51'; choose one of seed_r50"),
    ('base = "x.json"\n' + SHAPE, "base: cannot read"),
    ('base = "i3d_r50"\n', "missing key 'input_shape'"),
    ('base = "i3d_r50"\ninput_shape = [1,3,8]\n', "input_shape: input shape must be five"),
    ('base = "i3d_r50"\ninput_shape = [1,4,8,64,64]\n', "4 channels but base in_channels is 3"),
    ("[base]\ndepht = 50\n", "base: unknown ResNet3d config key"),
    ("[base]\npreset = 'nope'\n", "preset: unknown preset 'nope'"),
    ("inflate_styles = ['3x1x1']", "dimensions.inflate_styles: unknown dimension; allowed: depth"),
    ("layer2.inflate = ['none', 'alternat']", r"dimensions.layer2.inflate: .* family \('none'"),
    ("layer2.inflate = ['10']", "layer2.inflate: '10' has 2 bits but layer2 has 4 block"),
    ("layer5.inflate = ['all']", "layer5.inflate: the base has 4 stage"),
    ("with_pool2 = ['yes']", "dimensions.with_pool2: values must be true or false; got 'yes'"),
    ("base_channels = [8, 0]", "dimensions.base_channels: values must be positive ints; got 0"),
    ("depth = [50, 51]", "dimensions.depth: values must be one of 18, 34, 50, 101, 152; got 51"),
    ("inflate_style = []", "dimensions.inflate_style: choices are empty"),
    ("inflate_style = ['3x1x1', '3x1x1']", "dimensions.inflate_style: choices repeat"),
    ("stem = {t = [1]}", "dimensions.stem is a table"),
    ("layer2 = {inflate = {a = 1}}", "layer2.inflate: expected a value or a list"),
    ("depth = 18\nlayer1.temporal_stride = 2", r"fixed dimensions is invalid.*strides\[0\]"),
    ("inflate_style = [", "not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m[:40] for _, m in BAD_FILES])
def test_bad_space_files_get_one_line_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    header = 'base = "i3d_r50"\ninput_shape = [1, 3, 8, 64, 64]\n[dimensions]\n'
    if text.startswith(("base =", "[base]")):
        header = "input_shape = [1, 3, 8, 64, 64]\n" if text.startswith("[base]") else ""
    path = tmp_path / "bad.toml"
    path.write_text(header + text)
    with pytest.raises(ConfigError, match=message) as info:
        SearchSpace.from_toml(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


def test_dimensions_check_their_values_in_python_too() -> None:
    assert Choice("inflate_style", ["3x1x1"]).values == ("3x1x1",)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="inflate_style: choices must be a list"):
        Choice("inflate_style", "3x1x1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layer2.dilation: values must be positive ints"):
        Fixed("layer2.dilation", True)
    with pytest.raises(ConfigError, match="'layer2.dilation' declared twice"):
        SearchSpace(
            base=SMALL_BASE,
            input_shape=(1, 3, 8, 32, 32),
            dimensions=(Fixed("layer2.dilation", 2), Choice("layer2.dilation", (1, 2))),
        )


def test_sample_is_the_only_caller_of_trial_suggest() -> None:
    root = Path(__file__).resolve().parents[2]
    callers = [
        str(path.relative_to(root))
        for package in ("search_space", "runners", "studies")
        for path in sorted((root / package).rglob("*.py"))
        if re.search(r"\.suggest_\w+\(", path.read_text(encoding="utf-8"))
    ]
    assert callers == ["search_space/space.py"]
