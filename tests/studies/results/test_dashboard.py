"""A study reads well in the tools researchers use: optuna-dashboard's own API server (named
objectives, one point per network on the front, infeasible trials with their reason and
constraint values), pandas (``studies.trials()`` over every storage backend) and Optuna.

The study is real (real storage, the real run loop, reuse and constraints); only the
measurement is the replaceable step: metrics from the analytic cost, no training.
"""

from __future__ import annotations

import json
import threading
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest

from search_space.cost import cost
from studies import pareto, select_trial, stored_spec, trials
from studies.run.loop import make_objective, run_trials
from studies.run.measure import Infeasible, MeasureRequest, check_constraints
from studies.run.objective import TrialRunner
from studies.study.sections import StudySpec
from studies.study.spec import parse_spec
from studies.study.storage import open_study

TINY = Path(__file__).parents[1] / "specs" / "tiny.toml"
OBJECTIVES = ["top1", "gflops"]
MAX_GFLOPS = 0.0025  # only the largest network of the tiny space breaks it


def _spec() -> StudySpec:
    data = tomllib.loads(TINY.read_text())
    data["study"].update(objectives=["top1:max", "gflops:min"], n_trials=5)
    data["train"]["keep_checkpoints"] = "none"
    data["wandb"]["mode"] = "disabled"
    data["constraints"] = {"max_gflops": MAX_GFLOPS}
    return parse_spec(data, source="tiny", base_dir=Path.cwd())


class CostMeasure:
    """Metrics without training: GFLOPs from the analytic cost, a top-1 that grows with it
    (so the front has several points), and a two-epoch curve through ``on_epoch``."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    def __call__(self, request: MeasureRequest) -> dict[str, float]:
        trial, on_epoch = request.trial, request.on_epoch
        gflops = cost(request.config, self.spec.measure.input_shape).gflops
        violated = check_constraints(trial, self.spec.constraints, {"gflops": gflops})
        if violated:
            raise Infeasible("constraint violated before training: " + violated[0])
        top1 = 50.0 + 1e5 * gflops
        on_epoch(1, {"val_top1": top1 / 2})
        on_epoch(2, {"val_top1": top1})
        trial.set_user_attr("history", [{"val_top1": top1 / 2}, {"val_top1": top1}])
        return {"top1": top1, "gflops": gflops, "params_m": 0.1}


def _run_study(url: str) -> optuna.Study:
    """Five completed trials: the enqueued ones repeat a network (a reuse) and break the
    GFLOPs budget (an infeasible trial); the sampler proposes the rest."""
    spec = _spec()
    study = open_study(spec, study_name=f"tools-{uuid.uuid4().hex[:8]}", storage_url=url)
    small = {"layer3.inflate": "none", "layer4.inflate": "none", "with_pool2": True}
    large = {"layer3.inflate": "all", "layer4.inflate": "all", "with_pool2": False}
    for params in (small, small, large):
        study.enqueue_trial(params, skip_if_exists=False)
    runner = TrialRunner(spec, measure=CostMeasure(spec))
    stopped = run_trials(study, make_objective(study, runner, n_trials=5), n_trials=5,
                         timeout_s=None, progress=False, label="t", reap=lambda: None)  # fmt: skip
    assert stopped == "done"
    return study


def test_trials_frame_and_python_api(storage_url: str) -> None:
    study = _run_study(storage_url)
    frame = trials(study)
    assert frame.attrs["objectives"] == OBJECTIVES
    assert frame.attrs["directions"] == ["maximize", "minimize"]
    assert list(frame.columns[:5]) == ["trial", "state", "optuna_state", "top1", "gflops"]
    by_state = frame.groupby("state")["trial"].apply(list).to_dict()
    # the budget counts trainings: 5 measured; reused (and infeasible) trials do not count
    assert len(by_state["complete"]) == 5 and by_state["reused"]
    # each row says how many seeds its network was trained with (one here) and its mean
    assert set(frame.loc[frame["state"] == "complete", "n_seeds"]) == {1}
    assert 1 in by_state["reused"] and 2 in by_state["infeasible"]
    reused, source = frame.loc[1], frame.loc[0]
    assert reused["optuna_state"] == "PRUNED" and reused["reused_from"] == 0
    # a trial number, not 0.0; NA for the trials that reused nothing
    assert str(frame["reused_from"].dtype) == "Int64" and str(reused["reused_from"]) == "0"
    assert frame["reused_from"].isna().sum() == len(frame) - len(by_state["reused"])
    assert reused["top1"] == source["top1"] and reused["gflops"] == source["gflops"]
    assert reused["reason"] == "reused trial 0 (same network and training)"
    assert reused["digest"] == source["digest"] and reused["config"] == source["config"]
    # the first attribute a person sees, on every backend, says what happened
    assert next(iter(study.trials[2].user_attrs)) == "about"
    infeasible = frame.loc[2]
    assert infeasible["optuna_state"] == "FAIL" and "gflops" in infeasible["reason"]
    assert source["val_top1"] == [source["top1"] / 2, source["top1"]]
    # Optuna itself now names the objectives (pandas' trials_dataframe, the dashboard)
    assert study.metric_names == OBJECTIVES
    assert {"values_top1", "values_gflops"} <= set(study.trials_dataframe().columns)
    # ... and its own front holds each network once, like ours
    front = pareto(study)
    assert sorted(t.number for t in study.best_trials) == sorted(front["trial"])
    # one shape: a selected trial is a row with the same columns as trials()
    row = select_trial(study, trial=1)  # a reused trial resolves to the trial it reused
    assert row["trial"] == 0 and list(row.index) == list(frame.columns)
    assert stored_spec(study) is not None and stored_spec(study).objective_names == (
        "top1",
        "gflops",
    )


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, optuna.Study]]:
    """optuna-dashboard's own WSGI app over a real SQLite study, on 127.0.0.1 (free port)."""
    from optuna_dashboard import wsgi

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = _run_study(url)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, wsgi(url), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", study
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_optuna_dashboard_shows_names_one_front_and_reasons(
    dashboard: tuple[str, optuna.Study],
) -> None:
    base, study = dashboard
    summaries = _get(f"{base}/api/studies")["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == study.study_name]
    detail = _get(f"{base}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == OBJECTIVES  # axes read "top1", "gflops", not 0, 1

    # the dashboard's front is r3dnas pareto's: the reused trial is not a second point
    ours = sorted(int(n) for n in pareto(study)["trial"])
    assert sorted(t["number"] for t in detail["best_trials"]) == ours
    assert 1 not in ours  # trial 1 reused trial 0 (same values)

    by_number = {t["number"]: t for t in detail["trials"]}
    infeasible = by_number[2]
    assert infeasible["state"] == "Fail"
    first = infeasible["user_attrs"][0]  # the first attribute shown is the reason
    assert first["key"] == "about"
    assert first["value"].startswith("infeasible: ") and "gflops" in first["value"]
    assert infeasible["constraints"] and infeasible["constraints"][0] > 0  # over the budget
    reused = by_number[1]
    assert reused["state"] == "Pruned"
    assert reused["user_attrs"][0]["value"] == "reused trial 0 (same network and training)"
    assert by_number[0]["user_attrs"][0]["value"] == "complete"
