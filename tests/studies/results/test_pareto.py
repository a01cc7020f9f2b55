"""Pareto front, hypervolume, export selection: on real storages with hand-made trials.

The trials are added with ``optuna.create_trial`` (real SQLite, real journal file), so these
tests check the front logic without training anything; tests/studies/run/test_launch.py covers
the path from a real study.
"""

from __future__ import annotations

import json
import random

import optuna
import pytest
from cli_runs import files_under, run_cli

from search_space import ConfigError, ResNet3dConfig
from search_space.config import readable_architecture
from studies.results.export import export
from studies.results.mmaction2_config import mmaction2_config_text
from studies.results.pareto import format_pareto, pareto, plot_pareto, select_trial

OBJECTIVES = ["top1", "gflops", "latency_ms"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


def _add(study: optuna.Study, values: tuple[float, float, float], *, feasible: bool = True,
         depth: int = 18) -> None:  # fmt: skip
    config = ResNet3dConfig(depth=depth, base_channels=8, inflate=int(values[0] > 50))
    attrs = {
        "config": config.to_dict(),
        "digest": config.digest() + str(len(study.trials)),
        "arch": readable_architecture(config),
        "state": "complete",
        "top1": values[0],
        "gflops": values[1],
        "latency_ms": values[2],
        "params_m": 1.0,
    }
    system = {"constraints:gflops": -1.0 if feasible else 1.0}
    values = list(values)[: len(study.directions)]  # a study of fewer objectives: the first
    study.add_trial(
        optuna.trial.create_trial(values=values, user_attrs=attrs, system_attrs=system)
    )


@pytest.fixture(params=["sqlite", "journal"])
def study(request: pytest.FixtureRequest, tmp_path) -> optuna.Study:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        storage = f"sqlite:///{tmp_path / 's.db'}"
    else:
        from optuna.storages import JournalStorage, journal

        storage = JournalStorage(journal.JournalFileBackend(str(tmp_path / "s.log")))
    study = optuna.create_study(study_name="front", storage=storage, directions=DIRECTIONS)
    study.set_user_attr("objectives", OBJECTIVES)
    study.set_user_attr("spec", {"data": {"num_classes": 7}})
    for values in [(80, 2.0, 10.0), (70, 1.0, 5.0), (60, 3.0, 20.0), (90, 4.0, 30.0),
                   (85, 1.5, 12.0)]:  # fmt: skip
        _add(study, values)
    _add(study, (99, 0.5, 1.0), feasible=False)  # would dominate everything: must not show
    return study


def _url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The storage URL of the ``study`` fixture, as a user types it."""
    sqlite = tmp_path / "s.db"
    return f"sqlite:///{sqlite}" if sqlite.exists() else f"journal://{tmp_path / 's.log'}"


def test_front_is_the_non_dominated_feasible_trials(study: optuna.Study) -> None:
    front = pareto(study)
    # (60, 3, 20) is dominated by (80, 2, 10); the infeasible trial is excluded.
    assert sorted(front["trial"]) == [0, 1, 3, 4]
    assert list(front.columns[:4]) == ["trial", *OBJECTIVES]
    assert front.attrs["n_complete_feasible"] == 5
    assert all(front["arch"].str.startswith("R18"))


def test_front_over_a_subset_of_objectives(study: optuna.Study) -> None:
    front = pareto(study, objectives=["top1", "gflops"])
    assert sorted(front["trial"]) == [1, 3, 4]  # (85, 1.5) now dominates (80, 2)
    front = pareto(study, objectives=["top1"])
    assert list(front["trial"]) == [3]
    with pytest.raises(ConfigError, match="not one of this study's"):
        pareto(study, objectives=["accuracy"])
    with pytest.raises(ConfigError, match="name one twice"):
        pareto(study, objectives=["top1", "top1"])


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_formats(study: optuna.Study, fmt: str) -> None:
    text = format_pareto(pareto(study), fmt=fmt)
    if fmt == "json":
        rows = json.loads(text)
        assert {r["trial"] for r in rows} == {0, 1, 3, 4}
        for row in rows:
            assert {"trial", "top1", "gflops", "latency_ms", "digest", "config"} <= set(row)
            ResNet3dConfig.from_dict(row["config"])
    elif fmt == "csv":
        assert text.splitlines()[0].startswith("trial,top1,gflops,latency_ms")
        assert len(text.strip().splitlines()) == 5
    else:
        assert "hypervolume" in text and "reference point" in text
        assert "R18" in text


def test_plot_is_written(study: optuna.Study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = plot_pareto(pareto(study), study, tmp_path / "front.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_one_objective_plot_draws_top1_by_trial(  # type: ignore[no-untyped-def]
    study: optuna.Study, tmp_path
) -> None:
    """One objective has no trade-off: top1 against top1 was a diagonal line."""
    import warnings

    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}), warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's warnings included
        path = plot_pareto(pareto(study, objectives=["top1"]), study, tmp_path / "best.svg")
    svg = path.read_text()
    assert ">trial<" in svg and ">top1<" in svg and "front: best trial" in svg
    assert "Pareto front" not in svg


def test_cli_plot_names_the_file_it_wrote(study: optuna.Study, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    plot = tmp_path / "front.svg"
    assert run_cli(["pareto", "--storage", _url(tmp_path), "--plot", str(plot)]) == 0
    assert capsys.readouterr().err.strip() == f"plot written to {plot}"
    assert plot.read_text().startswith("<?xml")


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        ("front.txt", "--plot must end in one of "),
        ("front", "--plot must end in one of "),  # matplotlib would write front.png
        ("folder", "--plot must be a file path, not an existing folder; got "),
        ("", "--plot must be a file path; got ''"),
    ],
)
def test_cli_plot_path_is_checked_before_the_front(  # type: ignore[no-untyped-def]
    study: optuna.Study, tmp_path, capsys, plot: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    before = files_under(tmp_path)
    argv = ["pareto", "--storage", _url(tmp_path), "--plot", str(tmp_path / plot) if plot else ""]
    assert run_cli(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"r3dnas pareto: error: {message}")
    if "end in" in message:
        assert all(f".{ext}," in err for ext in ("pdf", "png", "svg"))
    assert files_under(tmp_path) == before


def test_cli_plot_of_a_study_without_a_feasible_trial_is_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'e.db'}"
    study = optuna.create_study(study_name="empty", storage=url, directions=DIRECTIONS)
    study.set_user_attr("objectives", OBJECTIVES)
    _add(study, (99, 0.5, 1.0), feasible=False)
    before = files_under(tmp_path)
    assert run_cli(["pareto", "--storage", url, "--plot", str(tmp_path / "front.png")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        "r3dnas pareto: error: --plot: study 'empty' has no completed feasible trial yet; "
        "nothing to plot"
    )
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("n_objectives", [1, 2])
def test_cli_plot_without_a_colour_objective_warns_of_nothing(  # type: ignore[no-untyped-def]
    tmp_path, capsys, recwarn, n_objectives: int
) -> None:
    url = f"sqlite:///{tmp_path / 'few.db'}"
    study = optuna.create_study(
        study_name="few", storage=url, directions=DIRECTIONS[:n_objectives]
    )
    study.set_user_attr("objectives", OBJECTIVES[:n_objectives])
    for values in [(80, 2.0, 10.0), (70, 1.0, 5.0), (90, 4.0, 30.0)]:
        _add(study, values)
    plot = tmp_path / "front.png"
    assert run_cli(["pareto", "--storage", url, "--plot", str(plot)]) == 0
    assert capsys.readouterr().err.strip() == f"plot written to {plot}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize(("pick", "expected"), [("top1", 3), ("min-latency", 1)])
def test_select_by_pick(study: optuna.Study, pick: str, expected: int) -> None:
    assert select_trial(study, pick=pick)["trial"] == expected


def test_knee_is_on_the_front(study: optuna.Study) -> None:
    assert select_trial(study, pick="knee")["trial"] in {0, 1, 3, 4}


def test_select_errors(study: optuna.Study) -> None:
    with pytest.raises(ConfigError, match="no trial 42"):
        select_trial(study, trial=42)
    with pytest.raises(ConfigError, match="--pick must be one of"):
        select_trial(study, pick="best")


@pytest.mark.parametrize("fmt", ["json", "mmaction2", "checkpoint"])
@pytest.mark.parametrize("out", ["folder", ""])
def test_cli_export_refuses_an_out_that_is_a_folder_before_any_work(  # type: ignore[no-untyped-def]
    study: optuna.Study, tmp_path, capsys, fmt: str, out: str
) -> None:
    (tmp_path / "folder").mkdir()
    before = files_under(tmp_path)
    argv = ["export", "--storage", _url(tmp_path), "--format", fmt, "--out"]
    assert run_cli([*argv, str(tmp_path / out) if out else ""]) == 2
    out_text, err = capsys.readouterr()
    expected = f", not an existing folder; got {str(tmp_path / out)!r}" if out else "; got ''"
    assert (
        out_text == ""
        and err.strip() == f"r3dnas export: error: --out must be a file path{expected}"
    )
    assert files_under(tmp_path) == before


def test_export_json_builds_the_same_network_here_and_in_mmaction2(
    study: optuna.Study, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from mmaction_oracle import load_reference

    from search_space import ResNet3d

    out = tmp_path / "best.json"
    export(study, trial=3, fmt="json", out=out)
    kwargs = json.loads(out.read_text())
    ours = ResNet3d(**kwargs)
    theirs = load_reference().ResNet3d(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_export_mmaction2_config_parses_with_mmengine(study: optuna.Study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmaction_oracle import load_reference
    from mmengine.config import Config

    out = tmp_path / "best_config.py"
    export(study, trial=0, fmt="mmaction2", out=out)
    cfg = Config.fromfile(str(out))
    assert cfg.model.type == "Recognizer3D"
    assert cfg.model.cls_head.num_classes == 7
    backbone = dict(cfg.model.backbone)
    assert backbone.pop("type") == "ResNet3d"
    expected = ResNet3dConfig.from_dict(study.trials[0].user_attrs["config"])
    assert ResNet3dConfig.from_dict(backbone) == expected
    theirs = load_reference().ResNet3d(**backbone)
    assert cfg.model.cls_head.in_channels == theirs.feat_dim


def test_mmaction2_text_round_trips_tuples_and_dicts() -> None:
    config = ResNet3dConfig(
        depth=50, inflate=((1, 1, 1), (1, 0, 1, 0), 1, (0, 1, 0)), non_local=(0, 1, 0, 0),
        non_local_cfg={"sub_sample": True}, out_indices=(3,),
    )  # fmt: skip
    text = mmaction2_config_text(config.to_dict(), num_classes=3)
    namespace: dict[str, object] = {}
    exec(text, namespace)  # noqa: S102 - our own generated config
    backbone = dict(namespace["model"]["backbone"])  # type: ignore[index]
    backbone.pop("type")
    assert ResNet3dConfig.from_dict(backbone) == config


def test_the_table_fits_100_columns_and_wide_keeps_one_table(study: optuna.Study) -> None:
    front = pareto(study)
    text = format_pareto(front)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "architectures" in text and all(f"#{t} " in text for t in front["trial"])
    wide = format_pareto(front, wide=True)
    assert "digest" in wide.splitlines()[1] and "architectures" not in wide


def _many_points(n: int) -> list[tuple[float, float]]:
    rng = random.Random(3)
    # clusters of near-identical points, as a front of similar networks has
    return [(1.0 + 0.001 * rng.random() + i // 4, 50 + 0.05 * rng.random()) for i in range(n)]


def test_plot_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from studies.results.pareto import place_labels

    points = _many_points(8)
    labels = [f"#{i + 10}" for i in range(len(points))]
    boxes = {}
    for how in ("naive", "placed"):
        fig = Figure(figsize=(7, 5), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.scatter(*zip(*points, strict=True))
        fig.tight_layout()
        if how == "placed":
            texts = place_labels(ax, points, labels)
        else:
            texts = [ax.annotate(label, p, fontsize=8, xytext=(5, 5), textcoords="offset points")
                     for p, label in zip(points, labels, strict=True)]  # fmt: skip
        renderer = fig.canvas.get_renderer()
        found = [t.get_window_extent(renderer) for t in texts]
        boxes[how] = sum(a.overlaps(b) for i, a in enumerate(found) for b in found[i + 1 :])
    assert boxes["naive"] > 0  # the test can fail: these points do collide when labelled naively
    assert boxes["placed"] == 0


def test_one_outlier_sets_neither_the_reference_point_nor_the_colour_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A latency of 62 ms among 2-3 ms neighbours (one mis-measured trial): the reference
    point stays where the other trials put it, and the hypervolume barely moves."""
    from studies.results.pareto import robust_max

    fronts = {}
    for name, latency in (("outlier", 62.0), ("normal", 2.2)):
        study = optuna.create_study(
            study_name=name, storage=f"sqlite:///{tmp_path / 's.db'}", directions=DIRECTIONS
        )
        study.set_user_attr("objectives", OBJECTIVES)
        for i in range(8):
            _add(study, (60.0 + 4 * i, 1.0 + 0.3 * i, 2.1 + 0.05 * (i % 3)))
        _add(study, (99.9, 0.5, latency))  # the best top1 and gflops: on the front
        fronts[name] = pareto(study)
    after = fronts["outlier"]
    assert after.attrs["reference_point"][2] < 3.0  # not 62 + 10%: ~68
    # the outlier counts for no more than the same network timed like its neighbours
    assert after.attrs["hypervolume"] <= fronts["normal"].attrs["hypervolume"]
    assert robust_max([2.1, 2.2, 2.3, 2.4, 2.5, 62.0]) < 5 and robust_max([1.0, 2.0, 3.0]) == 3
    plot_pareto(after, study, tmp_path / "front.png")  # the colour scale is clipped: no error
