"""launch -> pareto -> export -> build, ablate, resume, reuse, infeasible, wandb read-back.

Every test runs real studies (SQLite files, real training on the motion dataset, real wandb
offline runs) with tests/studies/specs/tiny.toml, a few seconds per trial.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from study_specs import TINY, tiny_spec

from search_space import ConfigError, ResNet3d, ResNet3dConfig
from studies.results.export import export
from studies.results.pareto import pareto
from studies.results.reproduce import reproduce
from studies.run.ablation import ablate
from studies.run.launch import launch
from studies.study.spec import load_spec, parse_spec
from studies.tracking.offline import find_offline_runs, read_offline_run


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / f'{name}.db'}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, optuna.Study]:
    """One real study of 3 trials, shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("study")
    url = _url(tmp, "tiny")
    result = launch(str(TINY), storage=url, runs_dir=tmp, progress=False)
    assert result.completed == 3 and not result.interrupted
    study = optuna.load_study(study_name="tiny", storage=url)
    return tmp, url, study


def test_launch_records_everything_needed_to_reproduce(finished) -> None:  # type: ignore[no-untyped-def]
    _, _, study = finished
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    for t in complete:
        config = ResNet3dConfig.from_dict(t.user_attrs["config"])
        assert config.digest() == t.user_attrs["digest"]
        assert t.values == [t.user_attrs[k] for k in ("top1", "gflops", "latency_ms")]
        assert 0 <= t.user_attrs["top1"] <= 100
        assert t.user_attrs["seed"] == 0
        assert {"torch", "optuna"} <= set(t.user_attrs["versions"])
        assert t.user_attrs["device"].startswith("cpu")
        if t.user_attrs["state"] == "complete":
            assert {"sample_s", "cost_s", "latency_s", "train_s", "flops_s"} <= set(
                t.user_attrs["timings"]
            )
            assert len(t.user_attrs["history"]) == 1  # one epoch


def test_pareto_export_and_build_in_both_formats(finished, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmengine.config import Config

    _, url, study = finished
    front = pareto("tiny", storage=url)
    assert len(front) >= 1 and set(front["trial"]) <= {t.number for t in study.trials}
    best = int(front.sort_values("top1", ascending=False).iloc[0]["trial"])
    out = tmp_path / "best.json"
    export("tiny", storage=url, pick="top1", fmt="json", out=out)
    kwargs = json.loads(out.read_text())
    assert kwargs == study.trials[best].user_attrs["config"]
    model = ResNet3d(**kwargs)
    assert sum(p.numel() for p in model.parameters()) == study.trials[best].user_attrs["params"]
    cfg_path = tmp_path / "best_mmaction2.py"
    export("tiny", storage=url, trial=best, fmt="mmaction2", out=cfg_path)
    cfg = Config.fromfile(str(cfg_path))
    backbone = dict(cfg.model.backbone)
    backbone.pop("type")
    assert ResNet3dConfig.from_dict(backbone) == ResNet3dConfig.from_dict(kwargs)
    assert cfg.model.cls_head.num_classes == 2


def test_cli_pareto_json_and_errors(finished) -> None:  # type: ignore[no-untyped-def]
    _, url, _ = finished

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from studies.cli import main; sys.exit(main())"
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    result = cli("pareto", "--study", "tiny", "--storage", url, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and {"trial", "top1", "gflops", "latency_ms", "digest", "config"} <= set(rows[0])
    for args, message in [
        (("pareto", "--study", "nope", "--storage", url), "no study named 'nope'"),
        (("pareto", "--study", "tiny", "--storage", "mysql://x"), "is not supported"),
        (("export", "--study", "tiny", "--storage", url, "--trial", "99"), "has no trial 99"),
        (("launch", "no-such-spec"), "unknown study spec 'no-such-spec'"),
    ]:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_reproduce_flops_params_exact_and_top1_identical(finished) -> None:  # type: ignore[no-untyped-def]
    _, url, study = finished
    trial = next(t for t in study.trials if t.user_attrs.get("state") == "complete")
    result = reproduce("tiny", storage=url, trial=trial.number, retrain=True)
    assert result.measured["gflops"] == trial.user_attrs["gflops"]
    assert result.measured["params"] == trial.user_attrs["params"]
    assert result.measured["top1"] == trial.user_attrs["top1"]
    assert result.measured["latency_ms"] > 0


def test_wandb_offline_runs_match_the_storage(finished) -> None:  # type: ignore[no-untyped-def]
    tmp, _, study = finished
    runs = [read_offline_run(p) for p in find_offline_runs(tmp / "tiny")]
    trial_runs = {r.name: r for r in runs if r.job_type == "trial"}
    assert len(trial_runs) == 3
    for t in study.trials:
        run = trial_runs[f"trial-{t.number}"]
        assert run.group == "tiny"
        assert run.config["arch"]["depth"] == t.user_attrs["config"]["depth"]
        assert run.summary["state"] == t.user_attrs["state"]
        assert run.summary["top1"] == pytest.approx(t.user_attrs["top1"])
        assert run.summary["gflops"] == pytest.approx(t.user_attrs["gflops"])
        if t.user_attrs["state"] == "complete":
            assert len(run.history) == len(t.user_attrs["history"])
    assert any(r.job_type == "study" for r in runs)


def test_a_repeated_architecture_is_not_retrained(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, space={"dimensions": {"with_pool2": [True]}})
    result = launch(spec, study_name="repeat", storage=_url(tmp_path, "r"), runs_dir=tmp_path,
                    progress=False, wandb_mode="disabled", print_pareto=False)  # fmt: skip
    # a one-network space and a budget of 3 trainings: the network is trained once, every
    # later proposal is reused (nothing trained, not counted) until 10 in a row stop the study
    assert result.completed == 1 and result.stopped == "stuck" and result.exit_code == 3
    study = optuna.load_study(study_name="repeat", storage=_url(tmp_path, "r"))
    states = [t.user_attrs["state"] for t in study.trials]
    assert states == ["complete"] + ["reused"] * 10
    first = study.trials[0]
    for t in study.trials[1:]:
        assert t.user_attrs["reused_from"] == 0
        assert "train_s" not in t.user_attrs["timings"]
        # Optuna sees each network once (a reuse is PRUNED); the metrics are copied
        assert t.state == optuna.trial.TrialState.PRUNED and t.values is None
        assert [t.user_attrs[k] for k in ("top1", "gflops", "latency_ms")] == first.values


def test_an_infeasible_trial_is_recorded_and_never_trained(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, constraints={"max_gflops": 1e-6}, study={"n_trials": 1})
    result = launch(spec, study_name="infeasible", storage=_url(tmp_path, "i"),
                    runs_dir=tmp_path, progress=False, wandb_mode="disabled",
                    print_pareto=False)  # fmt: skip
    assert result.completed == 0 and result.infeasible >= 1
    study = optuna.load_study(study_name="infeasible", storage=_url(tmp_path, "i"))
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.FAIL
        assert t.user_attrs["state"] == "infeasible"
        assert "gflops" in t.user_attrs["fail_reason"] and "max" in t.user_attrs["fail_reason"]
        assert "train_s" not in t.user_attrs["timings"] and "history" not in t.user_attrs
        assert t.system_attrs["constraints:gflops"] > 0


def test_a_latency_budget_is_enforced_even_when_latency_is_not_measured_otherwise(
    tmp_path: Path,
) -> None:
    spec = tiny_spec(
        tmp_path,
        study={"n_trials": 1, "objectives": ["top1:max", "gflops:min"]},
        measure={"measure_latency": False},
        constraints={"max_latency_ms": 1e-6},
    )
    launch(spec, study_name="budget", storage=_url(tmp_path, "b"), runs_dir=tmp_path,
           progress=False, wandb_mode="disabled", print_pareto=False)  # fmt: skip
    study = optuna.load_study(study_name="budget", storage=_url(tmp_path, "b"))
    assert study.trials
    for t in study.trials:
        assert t.user_attrs["state"] == "infeasible"
        assert t.user_attrs["fail_reason"].startswith("constraint violated before training")
        assert "latency_ms" in t.user_attrs["fail_reason"]


def test_missing_data_is_one_error_before_the_study_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.cli import main

    spec = TINY.read_text().split("[data]")[0] + (
        '[data]\nkind = "video_list"\ntrain_list = "missing.txt"\nval_list = "missing.txt"\n'
        "num_classes = 2\n" + "[train]" + TINY.read_text().split("[train]")[1]
    )
    path = tmp_path / "missing.toml"
    path.write_text(spec)
    url = _url(tmp_path, "missing")
    started = time.perf_counter()
    code = main(["launch", str(path), "--storage", url, "--wandb", "disabled", "--quiet"])
    assert code == 2 and time.perf_counter() - started < 30
    err = capsys.readouterr().err.strip()
    assert "train_list: list file" in err and "missing.txt does not exist" in err
    assert "\n" not in err
    assert optuna.get_all_study_names(storage=url) == []  # nothing was created


def test_interrupt_then_resume(tmp_path: Path) -> None:
    """SIGINT mid-trial marks the trial; the next launch re-runs it and finishes the study."""
    url = _url(tmp_path, "resume")
    spec = tmp_path / "slow.toml"
    spec.write_text(
        TINY.read_text().replace("epochs = 1", "epochs = 100000")
    )  # still running at SIGINT
    cmd = [sys.executable, "-c", "import sys; from studies.cli import main; sys.exit(main())",
           "launch", str(spec), "--study", "resume", "--storage", url, "--n-trials", "1",
           "--runs-dir", str(tmp_path), "--wandb", "disabled", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="resume", storage=url)
        except KeyError:
            continue
        running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        if (
            running
            and "history" not in running[0].user_attrs
            and "digest" in running[0].user_attrs
        ):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in _ + err
    study = optuna.load_study(study_name="resume", storage=url)
    cut = study.trials[0]
    assert cut.state == optuna.trial.TrialState.FAIL
    assert cut.user_attrs["fail_reason"].startswith("interrupted")

    fast = tmp_path / "fast.toml"  # the same study, resumed with a short schedule
    fast.write_text(TINY.read_text())
    result = launch(str(fast), study_name="resume", storage=url, n_trials=1, runs_dir=tmp_path,
                    progress=False, wandb_mode="disabled", print_pareto=False)  # fmt: skip
    assert result.completed == 1
    study = optuna.load_study(study_name="resume", storage=url)
    retry = study.trials[1]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["retry_of"] == 0
    assert retry.params == cut.params


def test_ablate_tiny_grid(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path)
    result = ablate(spec, factors=["with_pool2", "layer4.inflate"], seeds=2,
                    study_name="abl", storage=_url(tmp_path, "a"), runs_dir=tmp_path,
                    out_dir=tmp_path / "out", wandb_mode="disabled", progress=False)  # fmt: skip
    assert len(result.trials) == 8
    assert sorted(result.trials["seed"].unique()) == [0, 1]
    counts = result.trials.groupby(["with_pool2", "layer4.inflate"]).size()
    assert list(counts) == [2, 2, 2, 2]  # every grid point x seed exactly once
    top1 = result.summary[result.summary["metric"] == "top1"]
    assert set(top1["factor"]) == {"with_pool2", "layer4.inflate"}
    assert (top1["n"] == 4).all()
    assert (top1["ci95_low"] <= top1["mean"]).all() and (top1["mean"] <= top1["ci95_high"]).all()
    gflops = result.effects[result.effects["metric"] == "gflops"].set_index("factor")
    assert gflops.loc["layer4.inflate", "effect"] > 0  # inflating layer4 adds FLOPs
    assert 0 <= gflops.loc["layer4.inflate", "importance"] <= 1
    assert result.csv_path is not None and result.csv_path.is_file()
    assert result.plot_path is not None and result.plot_path.read_bytes()[:4] == b"\x89PNG"
    assert "95% CI" in result.format()
    with pytest.raises(ConfigError, match="unknown"):
        ablate(spec, factors=["nope"], study_name="abl2", storage=_url(tmp_path, "b"),
               runs_dir=tmp_path, wandb_mode="disabled", progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("study", {"colour": "red"}, "unknown key 'colour' in \\[study\\]"),
        ("study", {"sampler": "cmaes"}, "sampler must be one of"),
        ("study", {"objectives": ["accuracy"]}, "objective 'accuracy' is not a metric"),
        ("study", {"objectives": ["top1:min"]}, "top1 is only maximized; write top1 or top1:max"),
        ("study", {"objectives": ["gflops:max"]}, "gflops is only minimized"),
        ("train", {"optimiser": "sgd"}, "optimiser"),
        ("data", {"kind": "youtube"}, "kind"),
        ("measure", {"latency_mode": "turbo"}, "latency_mode must be one of"),
        ("constraints", {"max_flops": 1.0}, "unknown key 'max_flops' in \\[constraints\\]"),
        ("wandb", {"mode": "loud"}, "mode must be one of"),
    ],
)
def test_bad_specs_name_the_key_and_section(
    tmp_path: Path,
    section: str,
    values: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_spec(tmp_path, **{section: values})


def test_shipped_specs_load() -> None:
    from studies.study.spec import spec_names

    names = spec_names()
    assert {"cpu_default", "inflation_ablation", "i3d_r50_gpu"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.study.n_trials >= 1


def test_stored_spec_paths_do_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    """A spec's relative paths are relative to its file; the copy a study stores is absolute,
    so ``reproduce`` and ``export`` parse it the same from any folder."""
    folder = tmp_path / "project"
    (folder / "lists").mkdir(parents=True)
    (folder / "base.json").write_text(ResNet3dConfig(depth=18).to_json())
    (folder / "study.toml").write_text(
        '[study]\nname = "paths"\n'
        '[space]\nbase = "base.json"\ninput_shape = [1, 3, 8, 32, 32]\n'
        "[space.dimensions]\nwith_pool2 = [true, false]\n"
        '[data]\nkind = "video_list"\nroot = "videos"\n'
        'train_list = "lists/train.txt"\nval_list = "lists/val.txt"\n'
    )
    spec = load_spec(folder / "study.toml")
    assert spec.data.root == str(folder / "videos")
    assert spec.raw["data"]["train_list"] == str(folder / "lists" / "train.txt")
    assert spec.raw["space"]["base"] == str(folder / "base.json")
    again = parse_spec(spec.raw, source="stored", base_dir=tmp_path / "elsewhere")
    assert again.data == spec.data
    assert again.space.base == spec.space.base


def test_single_objective_study_prunes_with_the_median_pruner(tmp_path: Path) -> None:
    spec = tiny_spec(
        tmp_path,
        study={"objectives": ["top1:max"], "pruner": "median", "n_startup_trials": 1,
               "n_trials": 3},
        train={"epochs": 3},
    )  # fmt: skip
    result = launch(spec, study_name="prune", storage=_url(tmp_path, "p"), runs_dir=tmp_path,
                    progress=False, wandb_mode="disabled", print_pareto=False)  # fmt: skip
    assert result.completed == 3
    study = optuna.load_study(study_name="prune", storage=_url(tmp_path, "p"))
    for t in study.trials:
        if t.user_attrs.get("state") == "complete":
            assert len(t.intermediate_values) == 3  # one report per epoch
        if t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["state"] != "reused":
            assert t.user_attrs["state"] == "pruned"
            assert t.user_attrs["fail_reason"].startswith("pruned at epoch")
    with pytest.raises(ConfigError, match="needs a single objective"):
        tiny_spec(tmp_path, study={"pruner": "median"})
