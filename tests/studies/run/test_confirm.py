"""A budget of trainings and confirmation seeds, as a user meets them: tabular studies (a
synthetic table of the 12 networks of a tiny space, two seeds each) through ``r3dnas launch``
and ``r3dnas pareto``, real SQLite storage."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tables import synthetic_table

from studies.cli import main


def _launch(tmp_path: Path, table: Path, *extra: str, n_trials: int) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["launch", str(table.with_suffix(".toml")), "--storage", _url(tmp_path),
                     "--study", "s", "--n-trials", str(n_trials), "--wandb", "disabled",
                     "--runs-dir", str(tmp_path), "--quiet", "--set", f'study.table="{table}"',
                     "--set", 'study.pruner="none"', *extra])  # fmt: skip
    return code, out.getvalue()


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 's.db'}"


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="s", storage=_url(tmp_path))
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def test_the_budget_counts_trainings_not_reuses(tmp_path: Path) -> None:
    """A bare random sampler over 12 networks proposes some again (the shipped samplers are
    wrapped so they do not: next test): those trials are reused (PRUNED, nothing trained), do
    not count, and the study still ends with exactly 10 networks trained."""
    from studies.run.launch import prepare_study
    from studies.run.loop import run_local
    from studies.run.objective import TrialRunner
    from studies.run.tabular_mode import TableMeasure
    from studies.study.spec import load_spec
    from studies.study.storage import storage_settings

    table = synthetic_table(tmp_path)
    spec = load_spec(table.with_suffix(".toml"),
                     overrides=[f'study.table="{table}"', 'study.pruner="none"'])  # fmt: skip
    study = prepare_study(spec, study_name="s", storage_url=_url(tmp_path), n_trials=10,
                          runs_dir=tmp_path)  # fmt: skip
    study.sampler = optuna.samplers.RandomSampler(seed=0)  # NOTE: unwrapped on purpose
    runner = TrialRunner(spec, measure=TableMeasure(spec), runs_dir=tmp_path)
    stopped = run_local(study, runner, n_trials=10, timeout_s=None, settings=storage_settings(),
                        progress=False, label="s")  # fmt: skip
    assert stopped == "done"
    trials = _trials(tmp_path)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    reused = [t for t in trials if t.user_attrs.get("state") == "reused"]
    assert len(complete) == 10
    assert len({t.user_attrs["digest"] for t in complete}) == 10  # each network once
    assert reused and all(t.state == TrialState.PRUNED for t in reused)
    assert len(trials) == len(complete) + len(reused)


def test_the_shipped_samplers_train_a_new_network_at_every_trial(tmp_path: Path) -> None:
    """Through the CLI, random sampling is wrapped in DistinctNetworks: 10 trials, 10 networks."""
    table = synthetic_table(tmp_path)
    code, _ = _launch(tmp_path, table, n_trials=10)
    assert code == 0
    trials = _trials(tmp_path)
    assert len(trials) == 10 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["digest"] for t in trials}) == 10


def test_a_sampler_that_only_proposes_measured_networks_stops_with_exit_code_3(
    tmp_path: Path,
) -> None:
    """40 trainings asked of a space of 12 networks: once all are trained the wrapper has no
    new network left, every proposal is a reuse, and after 10 in a row the study stops with one
    line and exit code 3."""
    from studies.run.loop import REUSE_STREAK

    table = synthetic_table(tmp_path)
    code, out = _launch(tmp_path, table, n_trials=40)
    assert code == 3
    line = (f"s: stopped: the last {REUSE_STREAK} trials proposed networks already measured "
            "(nothing trained; 12 of 40 networks trained): the RandomSampler (in "
            "DistinctNetworks) is stuck or the "
            "space is exhausted (exit code 3)")  # fmt: skip
    assert out.count(line) == 1
    trials = _trials(tmp_path)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 12
    assert [t.user_attrs["state"] for t in trials[-REUSE_STREAK:]] == ["reused"] * REUSE_STREAK


def test_confirm_seeds_trains_the_front_again_and_pareto_reports_means(tmp_path: Path) -> None:
    table = synthetic_table(tmp_path, seeds=(0, 1))
    code, out = _launch(tmp_path, table, "--set", "study.confirm_seeds=1", n_trials=6)
    assert code == 0
    assert "confirming with 1 more seed(s)" in out
    trials = _trials(tmp_path)
    search = [t for t in trials if "confirm_of" not in t.user_attrs]
    confirm = [t for t in trials if "confirm_of" in t.user_attrs]
    assert sum(t.state == TrialState.COMPLETE for t in search) == 6
    assert confirm and all(t.state == TrialState.COMPLETE for t in confirm)
    assert all(t.user_attrs["seed"] == 1 for t in confirm)
    assert len(confirm) <= 3  # at most ceil(n_trials / 2) networks, one more seed each
    assert all(t.user_attrs["about"].startswith("confirmation: seed 1 of trial") for t in confirm)
    front_digests = {t.user_attrs["digest"] for t in confirm}
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["pareto", "--storage", _url(tmp_path), "--study", "s",
                     "--format", "json"]) == 0  # fmt: skip
    rows = json.loads(out.getvalue())
    assert {"top1_std", "n_seeds"} <= set(rows[0])
    confirmed = [r for r in rows if r["n_seeds"] == 2]
    assert confirmed and {r["digest"] for r in confirmed} <= front_digests
    by_digest = {t.user_attrs["digest"]: t for t in search if t.state == TrialState.COMPLETE}
    for row in confirmed:
        # the synthetic table's seed 1 is seed 0 plus one point
        seed0 = by_digest[row["digest"]].values[0]
        assert row["top1"] == pytest.approx(seed0 + 0.5)
        assert row["top1_std"] == pytest.approx(2**-0.5)
    import studies

    frame = studies.trials("s", storage=_url(tmp_path))
    assert set(frame.loc[frame["digest"].isin(front_digests), "n_seeds"]) == {2}


def test_an_interrupted_confirmation_resumes_without_duplicates(tmp_path: Path) -> None:
    """Ctrl-C during the confirmation trials, then the same launch again: every network is
    confirmed once per seed, the interrupted one by its retry."""
    from studies.run.confirm import confirm_networks
    from studies.run.launch import prepare_study
    from studies.run.loop import run_local
    from studies.run.measure import MeasureRequest
    from studies.run.objective import TrialRunner
    from studies.run.run_study import RunOutcome
    from studies.run.tabular_mode import TableMeasure
    from studies.study.spec import load_spec
    from studies.study.storage import storage_settings

    table = synthetic_table(tmp_path, seeds=(0, 1))
    overrides = [f'study.table="{table}"', 'study.pruner="none"', "study.confirm_seeds=1"]
    spec = load_spec(table.with_suffix(".toml"), overrides=overrides)
    measure = TableMeasure(spec)

    def interrupting(request: MeasureRequest) -> dict[str, float]:
        if "confirm_of" in request.trial.user_attrs:
            raise KeyboardInterrupt
        return measure(request)

    study = prepare_study(spec, study_name="s", storage_url=_url(tmp_path), n_trials=6,
                          runs_dir=tmp_path)  # fmt: skip
    runner = TrialRunner(spec, measure=interrupting, runs_dir=tmp_path)

    def run(n: int) -> RunOutcome:
        return RunOutcome(stopped=run_local(study, runner, n_trials=n, timeout_s=None,
                                            settings=storage_settings(), progress=False,
                                            label="s"))  # fmt: skip

    searched = run(6)
    assert searched.stopped == "done"
    outcome = confirm_networks(study, spec, n_trials=6, run=run, searched=searched)
    assert outcome.stopped == "interrupted"
    code, _ = _launch(tmp_path, table, "--set", "study.confirm_seeds=1", n_trials=6)
    assert code == 0
    trials = _trials(tmp_path)
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and "confirm_of" in interrupted[0].user_attrs
    done = [(t.user_attrs["digest"], t.user_attrs["seed"]) for t in trials
            if "confirm_of" in t.user_attrs and t.state == TrialState.COMPLETE]  # fmt: skip
    assert done and len(done) == len(set(done))
    assert interrupted[0].user_attrs["digest"] in {d for d, _ in done}
    assert sum(t.state == TrialState.COMPLETE and "confirm_of" not in t.user_attrs
               for t in trials) == 6  # fmt: skip
    code, out = _launch(tmp_path, table, "--set", "study.confirm_seeds=1", n_trials=6)
    assert code == 0 and len(_trials(tmp_path)) == len(trials)  # nothing more to do


def test_confirm_seeds_is_validated(tmp_path: Path) -> None:
    from search_space.errors import ConfigError
    from studies.study.spec import load_spec

    table = synthetic_table(tmp_path)
    with pytest.raises(ConfigError, match=r"\[study\] confirm_seeds must be an int >= 0.*got -1"):
        load_spec(table.with_suffix(".toml"), overrides=["study.confirm_seeds=-1"])
    with pytest.raises(ConfigError, match="needs top1 among the objectives"):
        load_spec(table.with_suffix(".toml"),
                  overrides=["study.confirm_seeds=1", 'study.pruner="none"',
                            'study.objectives=["gflops"]'])  # fmt: skip
