"""[measure] latency = "predicted" | "both": the table's prediction is the objective or sits
beside the measurement, and max_latency_ms rejects a network before anything is built."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from study_specs import tiny_spec

from runners.latency.measure import LatencyConfig
from runners.latency.table import build_latency_table
from search_space import ConfigError
from search_space.latency_model import predict_latency
from studies.run.launch import launch


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("table")
    spec = tiny_spec(tmp)
    cfg = LatencyConfig(
        device="cpu", warmup=0, repeats=2, blocks=2, threads=1, isolation="lock", reference=False
    )
    build_latency_table(spec.space, cfg, calibrate=0, out=tmp / "tiny.json")
    return tmp / "tiny.json"


def test_predicted_latency_is_the_objective_and_nothing_is_timed(
    tmp_path: Path, table_path: Path
) -> None:
    spec = tiny_spec(
        tmp_path,
        study={"n_trials": 2},
        measure={"latency": "predicted", "latency_table": str(table_path)},
    )
    url = f"sqlite:///{tmp_path / 'p.db'}"
    launch(spec, study_name="pred", storage=url, runs_dir=tmp_path, progress=False,
           wandb_mode="disabled", print_pareto=False)  # fmt: skip
    study = optuna.load_study(study_name="pred", storage=url)
    from search_space import ResNet3dConfig
    from search_space.latency_model import LatencyTable

    table = LatencyTable.load(table_path)
    for t in study.trials:
        assert t.user_attrs["state"] == "complete"
        assert "latency_s" not in t.user_attrs["timings"]  # not measured
        config = ResNet3dConfig.from_dict(t.user_attrs["config"])
        expected = predict_latency(config, table, spec.measure.input_shape).latency_ms
        assert t.user_attrs["latency_ms"] == t.user_attrs["latency_pred_ms"] == expected
        assert t.user_attrs["latency_table"]["device"] == table.device


def test_both_checks_the_budget_from_the_prediction_before_building(
    tmp_path: Path, table_path: Path
) -> None:
    spec = tiny_spec(
        tmp_path,
        study={"n_trials": 1},
        measure={"latency": "both", "latency_table": str(table_path)},
        constraints={"max_latency_ms": 1e-6},
    )
    url = f"sqlite:///{tmp_path / 'b.db'}"
    launch(spec, study_name="both", storage=url, runs_dir=tmp_path, progress=False,
           wandb_mode="disabled", print_pareto=False)  # fmt: skip
    study = optuna.load_study(study_name="both", storage=url)
    assert study.trials
    for t in study.trials:
        assert t.user_attrs["state"] == "infeasible"
        assert "before building (predicted)" in t.user_attrs["fail_reason"]
        assert (
            "latency_s" not in t.user_attrs["timings"] and "train_s" not in t.user_attrs["timings"]
        )


def test_spec_errors_name_the_key(tmp_path: Path, table_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"\[measure\] latency = 'predicted' needs latency_table"
    ):
        tiny_spec(tmp_path, measure={"latency": "predicted"})
    with pytest.raises(ConfigError, match=r"\[measure\] latency must be one of"):
        tiny_spec(tmp_path, measure={"latency": "guessed"})
    with pytest.raises(ConfigError, match="latency_isolation must be one of"):
        tiny_spec(tmp_path, measure={"latency_isolation": "quiet"})
    with pytest.raises(ConfigError, match="latency_table was built for clips"):
        tiny_spec(
            tmp_path,
            measure={
                "latency": "predicted",
                "latency_table": str(table_path),
                "input_shape": [1, 3, 8, 32, 32],
            },
        )
    with pytest.raises(ConfigError, match="latency_table was measured in mode 'eager'"):
        tiny_spec(
            tmp_path,
            measure={
                "latency": "both",
                "latency_table": str(table_path),
                "latency_mode": "channels_last",
            },
        )
    with pytest.raises(ConfigError, match="cannot be read"):
        tiny_spec(tmp_path, measure={"latency": "predicted", "latency_table": "absent.json"})


@pytest.mark.parametrize("isolation", ["pause", "lock"])
def test_a_trial_can_be_paused_while_it_trains_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    """With isolation "pause" a process is registered as pausable while a trial trains, never
    while idle (a notebook between trials must not freeze when a worker times a network)."""
    import os

    from runners.latency.quiet import registered_workers
    from studies.run.measure import MeasureRequest, TrainingMeasure

    monkeypatch.setenv("R3DNAS_LOCK_DIR", str(tmp_path))
    spec = tiny_spec(
        tmp_path,
        train={"epochs": 2},
        measure={"latency_isolation": isolation, "measure_latency": False},
    )
    measure = TrainingMeasure(spec)
    assert os.getpid() not in registered_workers()
    trial = optuna.create_study(directions=["maximize", "minimize", "minimize"]).ask()
    config = spec.space.sample(trial)
    seen: list[bool] = []
    request = MeasureRequest(trial=trial, config=config, seed=0, timings={}, checkpoint=None,
                             on_epoch=lambda epoch, values: seen.append(
                                 os.getpid() in registered_workers()))  # fmt: skip
    metrics = measure(request)
    assert seen == [isolation == "pause"] * 2
    assert "top1" in metrics
    assert os.getpid() not in registered_workers()


def test_cost_aware_candidates_carry_the_predicted_latency(
    tmp_path: Path, table_path: Path
) -> None:
    """The cost-aware sampler knows each candidate's predicted latency before training: the
    table's prediction for the network its parameters build (the enumeration cache keeps
    parameters, and the configs are built again from them)."""
    from search_space.latency_model import LatencyTable
    from studies.sampling.candidates import build_candidates

    spec = tiny_spec(
        tmp_path,
        study={"sampler": "cost_aware"},
        measure={"latency": "predicted", "latency_table": str(table_path)},
    )
    candidates = build_candidates(spec)
    table = LatencyTable.load(table_path)
    assert candidates.latency_source == "latency table" and len(candidates) > 1
    for params, latency_ms in zip(candidates.params, candidates.latency_ms, strict=True):
        config = spec.space.config_from_params(params)
        expected = predict_latency(config, table, spec.measure.input_shape).latency_ms
        assert latency_ms == expected
