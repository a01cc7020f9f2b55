"""The latency runner: result consistency, restored global state, modes, config validation.

No timing thresholds: speed is measured in ``benchmarks/bench_latency.py``. These tests check
that the numbers are computed as documented and that a measurement leaves the process as it was.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from runners.latency.measure import (
    LatencyConfig,
    LatencyMode,
    measure_latency,
    measure_model_latency,
    prepare_model,
    resolve_device,
)
from runners.latency.stats import default_blocks
from search_space import ConfigError, ResNet3dConfig, TrialFailure, build_resnet3d

TINY = ResNet3dConfig(depth=18, base_channels=4)
CLIP = (1, 3, 4, 32, 32)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _quick(**changes: object) -> LatencyConfig:
    base = {"device": "cpu", "warmup": 1, "repeats": 6, "blocks": 3, "threads": 1,
            "isolation": "none", "reference": False}  # fmt: skip
    base.update(changes)
    return LatencyConfig.from_dict(base)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


# ---------------------------------------------------------------------- results
@pytest.mark.parametrize("mode", ["eager", "channels_last"])
def test_result_fields_are_consistent(mode: str) -> None:
    result = measure_latency(TINY, CLIP, _quick(mode=mode, batch_size=3))
    assert result.min_ms <= result.median_ms <= result.p90_ms
    assert result.min_ms <= result.mean_ms
    assert result.iqr_ms >= 0
    assert result.samples == 6
    assert len(result.block_medians_ms) == 3
    assert min(result.block_medians_ms) >= result.min_ms
    assert result.cv_of_median == pytest.approx(
        np.std(result.block_medians_ms, ddof=1) / np.mean(result.block_medians_ms)
    )
    assert result.batch_size == 3
    assert result.throughput_clips_s == pytest.approx(3 * 1000.0 / result.batch_median_ms)
    assert result.input_shape == CLIP
    assert result.mode == mode
    assert result.device.startswith("cpu: ")
    assert result.threads == 1
    assert result.compile_s is None and not result.inductor_freezing
    assert result.versions["torch"] == torch.__version__
    assert {"mmcv", "mmengine", "python"} <= set(result.versions)
    assert result.to_dict()["input_shape"] == list(CLIP)


def test_batch_one_throughput_is_the_inverse_median() -> None:
    result = measure_latency(TINY, "1x3x4x32x32", _quick())
    assert result.batch_median_ms == result.median_ms
    assert result.throughput_clips_s == pytest.approx(1000.0 / result.median_ms)


def test_input_batch_must_be_one() -> None:
    with pytest.raises(ConfigError, match="input_shape must have batch 1"):
        measure_latency(TINY, (2, 3, 4, 32, 32), _quick())


def test_collapsing_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        measure_latency(TINY.replace(with_pool2=True), (1, 3, 1, 32, 32), _quick())


# ---------------------------------------------------------------------- restored state
def test_threads_and_train_flag_are_restored(restore_threads: int) -> None:
    torch.set_num_threads(1)
    model = build_resnet3d(TINY).train()
    result = measure_model_latency(model, CLIP, _quick(threads=2))
    assert result.threads == 2
    assert torch.get_num_threads() == 1
    assert model.training


def test_state_is_restored_when_the_body_raises(restore_threads: int) -> None:
    torch.set_num_threads(1)
    model = build_resnet3d(TINY).train()
    with pytest.raises(RuntimeError, match="boom"), prepare_model(model, _quick(threads=2)):
        assert torch.get_num_threads() == 2
        assert not model.training
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 1
    assert model.training


def test_default_threads_is_every_available_core(restore_threads: int) -> None:
    torch.set_num_threads(1)
    result = measure_latency(TINY, CLIP, _quick(threads=None))
    assert result.threads == len(os.sched_getaffinity(0))


# ---------------------------------------------------------------------- modes
def test_channels_last_gives_the_eager_output() -> None:
    model = build_resnet3d(TINY.replace(zero_init_residual=False))
    cfg = _quick(mode="channels_last")
    with prepare_model(model, cfg) as prepared, torch.inference_mode():
        x = prepared.make_input(CLIP, seed=3)
        assert x.is_contiguous(memory_format=torch.channels_last_3d)
        assert model.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
        fast = prepared(x)
    with prepare_model(model, _quick(mode="eager")) as prepared, torch.inference_mode():
        assert model.conv1.conv.weight.is_contiguous()
        reference = prepared(x.contiguous())
    assert fast.shape == reference.shape
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compile_mode_with_freezing_matches_eager_and_restores_the_flag(
    restore_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    # Two shapes per measurement fill a limit of 2: the second model only compiles (instead of
    # silently running eager) because each measurement starts from an empty Dynamo cache.
    monkeypatch.setattr(dynamo_config, "recompile_limit", 2)
    measure_latency(TINY, CLIP, _quick(mode="compile", batch_size=2))
    model = build_resnet3d(TINY.replace(zero_init_residual=False))
    with torch.inference_mode():
        model.eval()
        x = torch.randn(CLIP, generator=torch.Generator().manual_seed(0))
        reference = model(x)
    assert inductor_config.freezing is False
    result = measure_model_latency(model, CLIP, _quick(mode="compile", batch_size=2))
    assert inductor_config.freezing is False
    assert dynamo_config.fail_on_recompile_limit_hit is False
    assert result.inductor_freezing
    assert result.compile_s is not None and result.compile_s > 0
    assert result.min_ms <= result.median_ms <= result.p90_ms
    with prepare_model(model, _quick(mode="compile")) as prepared, torch.inference_mode():
        assert inductor_config.freezing is True
        torch.testing.assert_close(prepared(x), reference, rtol=1e-3, atol=1e-4)


def test_compile_failure_is_a_trial_failure(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import torch._dynamo
    import torch._inductor.config as inductor_config

    # A real failure: inductor cannot find its C++ compiler (and no cache can hide that).
    monkeypatch.setattr(inductor_config.cpp, "cxx", (str(tmp_path / "no-such-cxx"),))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    torch._dynamo.reset()
    try:
        with pytest.raises(TrialFailure, match="torch.compile failed"):
            measure_latency(TINY, CLIP, _quick(mode="compile"))
    finally:
        torch._dynamo.reset()
    assert inductor_config.freezing is False


# ---------------------------------------------------------------------- devices
@no_cuda
def test_auto_device_is_cpu_without_cuda() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    result = measure_latency(TINY, CLIP, _quick(device="auto"))
    assert result.device.startswith("cpu: ")


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_config_error(device: str) -> None:
    with pytest.raises(ConfigError, match="needs CUDA"):
        measure_latency(TINY, CLIP, _quick(device=device))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["eager", "channels_last"])
def test_cuda_measurement(mode: str, restore_threads: int) -> None:
    result = measure_latency(TINY, CLIP, _quick(device="auto", mode=mode, batch_size=4))
    assert result.device.startswith("cuda:0: ")
    assert result.min_ms <= result.median_ms <= result.p90_ms
    assert result.samples == 6
    assert result.batch_median_ms > 0
    assert "cuda" in result.versions


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compile_matches_eager() -> None:
    model = build_resnet3d(TINY.replace(zero_init_residual=False)).cuda().eval()
    x = torch.randn(CLIP, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    with torch.inference_mode():
        reference = model(x)
    with prepare_model(model, _quick(device="cuda", mode="compile")) as prepared:
        assert not prepared.inductor_freezing
        with torch.inference_mode():
            torch.testing.assert_close(prepared(x), reference, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device", "tpu"),
        ("device", "cuda:x"),
        ("device", "CPU"),
        ("mode", "fast"),
        ("mode", "channels_last_3d"),
        ("warmup", -1),
        ("warmup", 1.5),
        ("repeats", 0),
        ("repeats", 1),  # fewer than its blocks (at least 2)
        ("blocks", 1),
        ("threads", 0),
        ("threads", True),
        ("batch_size", 0),
        ("batch_size", "8"),
        ("seed", -1),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must"):
        LatencyConfig(**{field: value})  # type: ignore[arg-type]


def test_mode_error_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="'eager', 'channels_last', 'compile'; got 'fast'"):
        LatencyConfig(mode="fast")


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ConfigError, match="'iterations'"):
        LatencyConfig.from_dict({"iterations": 3})


def test_to_dict_round_trips() -> None:
    cfg = LatencyConfig(mode=LatencyMode.COMPILE, threads=2, batch_size=4)
    assert cfg.mode == "compile"
    assert LatencyConfig.from_dict(cfg.to_dict()) == cfg


def test_blocks_default_to_the_repeats_own_split() -> None:
    assert LatencyConfig(repeats=40).block_count == default_blocks(40) == 10
    assert LatencyConfig(repeats=40, blocks=4).block_count == 4


def test_repeats_fewer_than_the_blocks_asked_for_name_both() -> None:
    with pytest.raises(ConfigError, match=r"^repeats must be at least blocks \(5\).*got 4"):
        LatencyConfig(repeats=4, blocks=5)
