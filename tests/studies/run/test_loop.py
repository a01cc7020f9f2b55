"""The run loop's seams and manners: a trial's metrics come from one replaceable ``Measure``,
the loop leaves the caller's global state (Optuna's log level, matplotlib's backend) as it was,
and a trial is recorded as pruned only for Optuna's own ``TrialPruned``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from search_space.config import ResNet3dConfig
from studies.run.loop import make_objective, run_trials
from studies.run.measure import MeasureRequest
from studies.run.objective import TrialRunner
from studies.study.sections import StudySpec
from studies.study.spec import parse_spec

TINY = Path(__file__).parents[1] / "specs" / "tiny.toml"


def _spec(**study: Any) -> StudySpec:
    data = tomllib.loads(TINY.read_text())
    data["study"].update(study)
    data["train"]["keep_checkpoints"] = "none"
    return parse_spec(data, source="tiny", base_dir=Path.cwd())


class TableMeasure:
    """A measure that trains nothing: fixed metrics and a per-epoch curve (a tabular mode's
    shape), fed through the runner's ``on_epoch`` hook like real training."""

    def __init__(self, curve: list[float], *, exc: BaseException | None = None) -> None:
        self.curve, self.exc, self.calls = curve, exc, 0

    def __call__(self, request: MeasureRequest) -> dict[str, float]:
        self.calls += 1
        for epoch, top1 in enumerate(self.curve, start=1):
            request.on_epoch(epoch, {"val_top1": top1})
        if self.exc is not None:
            raise self.exc
        return {"top1": self.curve[-1], "gflops": 0.5, "params_m": 0.1, "latency_ms": 2.0}


def test_a_measure_replaces_training_and_the_record_is_the_same() -> None:
    spec = _spec()
    measure = TableMeasure([10.0, 40.0])
    runner = TrialRunner(spec, measure=measure)
    study = optuna.create_study(directions=list(spec.directions))
    study.optimize(make_objective(study, runner, n_trials=1), n_trials=1)
    trial = study.trials[0]
    assert measure.calls == 1
    assert trial.state == TrialState.COMPLETE
    assert trial.values == [40.0, 0.5, 2.0]
    attrs = trial.user_attrs
    assert attrs["state"] == "complete" and attrs["top1"] == 40.0
    assert ResNet3dConfig.from_dict(attrs["config"]).digest() == attrs["digest"]
    assert {"sample_s"} <= set(attrs["timings"]) and "versions" in attrs


def test_the_epoch_hook_prunes_a_measure_like_training() -> None:
    spec = _spec(objectives=["top1:max"], pruner="median", n_startup_trials=1)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(1, 0))
    for curve in ([90.0, 95.0], [1.0, 2.0]):
        runner = TrialRunner(spec, measure=TableMeasure(curve))
        study.optimize(runner.run, n_trials=1)
    pruned = study.trials[1]
    assert pruned.state == TrialState.PRUNED
    assert pruned.user_attrs["state"] == "pruned"
    assert pruned.user_attrs["fail_reason"].startswith("pruned at epoch 1: val_top1 1")


def test_only_optunas_trial_pruned_is_recorded_as_pruned() -> None:
    class TrialPruned(Exception):  # same class name, not Optuna's: a bug, not a pruned trial
        pass

    spec = _spec()
    runner = TrialRunner(spec, measure=TableMeasure([1.0], exc=TrialPruned("look-alike")))
    study = optuna.create_study(directions=list(spec.directions))
    with pytest.raises(TrialPruned):
        study.optimize(runner.run, n_trials=1)
    assert study.trials[0].user_attrs.get("state") != "pruned"


def test_the_loop_restores_optunas_log_level() -> None:
    spec = _spec()
    study = optuna.create_study(directions=list(spec.directions))
    runner = TrialRunner(spec, measure=TableMeasure([5.0]))
    seen = []

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        seen.append(optuna.logging.get_verbosity())
        return runner.run(trial)

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        stopped = run_trials(
            study, objective, n_trials=1, timeout_s=None, progress=False, label="t",
            reap=lambda: None,
        )  # fmt: skip
        assert stopped == "done"
        assert seen == [optuna.logging.WARNING]  # quiet inside the loop
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG  # the caller's, after
    finally:
        optuna.logging.set_verbosity(before)


def test_plots_leave_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib
    import pandas as pd

    from studies.run.ablation import plot_ablation

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        summary = pd.DataFrame(
            [{"factor": "f", "level": lv, "metric": "top1", "mean": m, "ci95_high": m + 1}
             for lv, m in (("a", 1.0), ("b", 2.0))]
        )  # fmt: skip
        out = plot_ablation(summary, tmp_path / "a.png")
        assert out.read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)


def test_an_unexpected_error_is_a_failed_trial_and_the_study_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error the objective did not expect (here Optuna's own ValueError, as a resumed
    study with changed choices raised it) fails its trial with the reason; it was taken for a
    trial reaped by another worker ("declared stale elsewhere") and retried 25 times."""
    from studies.study.storage import open_storage

    spec = _spec()
    measure = TableMeasure([5.0])
    calls = []

    def first_fails(request: MeasureRequest) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("CategoricalDistribution does not support dynamic value space.")
        return measure(request)

    runner = TrialRunner(spec, measure=first_fails)
    study = optuna.create_study(
        directions=list(spec.directions), storage=open_storage(f"sqlite:///{tmp_path}/s.db")
    )
    stop = run_trials(study, runner.run, n_trials=2, timeout_s=60, progress=False, label="t",
                      reap=lambda: None)  # fmt: skip
    assert stop == "done"
    first = study.trials[0]
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"] == (
        "ValueError: CategoricalDistribution does not support dynamic value space."
    )
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
    out = capsys.readouterr().out
    assert "t: trial 0 failed: ValueError" in out and "elsewhere" not in out
