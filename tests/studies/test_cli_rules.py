"""One rule for every command: exit 0 success, 1 a check or a run failed, 2 a usage error, and
nothing written before the input has been checked; ``--study`` inferred where the storage holds
one study; ``--runs-dir`` honoured by every command that takes it.

Real studies on SQLite and journal files with tests/studies/specs/tiny.toml (a second or two
per trial), through ``studies.cli.main`` as a user calls it.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from cli_runs import files_under, run_cli

TINY = Path(__file__).parent / "specs" / "tiny.toml"
QUIET = ["--wandb", "disabled", "--quiet"]
# Every trial of tiny.toml is over this budget, so nothing ever completes (checked analytically,
# before any training: these runs take seconds).
IMPOSSIBLE = ["--set", "constraints.max_gflops=1e-9"]


def test_study_is_inferred_and_runs_dir_honoured(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = ["launch", str(TINY), "--n-trials", "1", "--runs-dir", "elsewhere", *QUIET]
    assert run_cli(launch) == 0
    assert (scratch / "elsewhere" / "tiny.db").is_file() and not (scratch / "runs").exists()
    capsys.readouterr()

    assert run_cli(["pareto", "--runs-dir", "elsewhere", "--format", "json"]) == 0
    assert [row["trial"] for row in json.loads(capsys.readouterr().out)] == [0]
    assert run_cli(["export", "--runs-dir", "elsewhere", "--trial", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 18
    assert run_cli(["reproduce", "--runs-dir", "elsewhere", "--trial", "0", "--no-latency"]) == 0
    assert "FLOPs and params reproduce exactly" in capsys.readouterr().out
    assert run_cli(["worker", "--runs-dir", "elsewhere", *QUIET]) == 0
    assert "1 of 1 completed trials" in capsys.readouterr().out

    # Without --runs-dir the default folder is searched, and nothing is created there.
    assert run_cli(["pareto"]) == 2
    assert capsys.readouterr().err.strip() == (
        "r3dnas pareto: error: no study in runs/; start one with r3dnas launch"
    )
    assert not (scratch / "runs").exists()

    # Two studies in one storage: a one-line error that names both.
    url = f"sqlite:///{scratch / 'elsewhere' / 'tiny.db'}"
    optuna.create_study(study_name="other", storage=url)
    for command in ("pareto", "export", "reproduce", "worker"):
        assert run_cli([command, "--storage", url]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith("holds 2 studies (other, tiny); name one with --study"), err
        assert len(err.splitlines()) == 1
    assert run_cli(["pareto", "--storage", url, "--study", "tiny", "--format", "csv"]) == 0


@pytest.mark.parametrize("command", ["pareto", "export", "reproduce", "worker"])
@pytest.mark.parametrize(
    "storage", [None, "sqlite:///{tmp}/study.db", "journal://{tmp}/study.log"]
)
def test_a_query_for_a_missing_study_creates_nothing(
    command: str, storage: str | None, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--study", "missing"]
    if storage is not None:
        argv += ["--storage", storage.format(tmp=scratch / "db")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no study named 'missing'" in err, err
    assert files_under(scratch) == []


def test_nothing_complete_is_exit_1(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["launch", str(TINY), "--n-trials", "1", *IMPOSSIBLE, *QUIET]) == 1
    err = capsys.readouterr().err
    assert "r3dnas launch: 0 of 1 trials complete (gave up)" in err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///runs/tiny.db")
    assert study.trials and all(t.user_attrs["state"] == "infeasible" for t in study.trials)

    # A worker on that study gives up the same way.
    assert run_cli(["worker", "--study", "tiny", *QUIET]) == 1
    assert "0 of 1 completed trials" in capsys.readouterr().out

    ablate = ["ablate", str(TINY), "--factor", "with_pool2", "--study", "abl", *IMPOSSIBLE]
    assert run_cli([*ablate, *QUIET]) == 1
    assert "r3dnas ablate: 0 of 2 trials complete (gave up)" in capsys.readouterr().err


def test_launch_with_workers_shows_the_study_s_progress(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workers run quietly (their bars would interleave), so the launching process shows
    one bar for the study: without it a build of hours printed nothing until the end."""
    argv = ["launch", str(TINY), "--n-trials", "2", "--workers", "2", "--wandb", "disabled"]
    assert run_cli(argv) == 0
    err = capsys.readouterr().err
    assert "tiny: 100%" in err and "2/2" in err and "0 running" in err, err[-1000:]


def test_launch_fails_when_its_workers_fail(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["launch", str(TINY), "--n-trials", "1", "--workers", "2", *IMPOSSIBLE, *QUIET]
    assert run_cli(argv) == 1
    out = capsys.readouterr().out
    assert "worker exit codes: 1, 1" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ablate", str(TINY), "--factor", "with_pool2", "--workers", "0"], "--workers"),
        (["ablate", str(TINY), "--factor", "nope"], "unknown factor 'nope'"),
        (["ablate", str(TINY), "--factor", "with_pool2", "--seeds", "0"], "--seeds"),
        (["ablate", str(TINY), "--factor", "with_pool2", "--factor", "with_pool2"], "repeat"),
        (["launch", str(TINY), "--workers", "0"], "--workers"),
        (["launch", str(TINY), "--n-trials", "0"], "--n-trials"),
        (["launch", str(TINY), "--heartbeat", "0"], "--heartbeat"),
        (["launch", str(TINY), "--set", "train.epoch=1"], "unknown train config key(s) 'epoch'"),
        (["launch", str(TINY), "--set", "epochs=1"], "--set expects SECTION.KEY=VALUE"),
        (["launch", "no-such-spec"], "unknown study spec 'no-such-spec'"),
        # a study name is a file name under the runs folder (an empty one wrote to /checkpoints)
        (["launch", str(TINY), "--set", 'study.name=""'], "[study] name '' is empty"),
        (["launch", str(TINY), "--study", "../up"], "study name '../up' holds a path separator"),
        (["launch", str(TINY), "--set", "study.timeout_s=0"], "timeout_s must be a positive"),
        (["launch", str(TINY), "--heartbeat", "60", "--grace", "5"], "--grace (5 s) must be"),
        # checked before any trial (it failed 25 trials one by one): no such device here
        (["launch", str(TINY), "--set", 'train.device="cuda:99"'], "[train] device 'cuda:99'"),
        (["launch", str(TINY), "--storage", "journal:///j.log"], "at the filesystem's root"),
        (["launch", str(TINY), "--set", "train.epochs.x=1"], "train.epochs is a value, not a"),
        (["launch", str(TINY), "--set", "foo.bar=1"], "--set 'foo.bar=1': unknown section [foo]"),
        # a second sweep: a segfault, tracebacks, trials failed one by one, queues of millions
        (["launch", str(TINY), "--set", "train.num_threads=100000"], "in [1, 1024]"),
        (["launch", str(TINY), "--set", "study.seed=-1"], "[study] seed must be an int in [0,"),
        (["launch", str(TINY), "--set", "constraints.max_gflops=nan"], "positive finite"),
        (["launch", str(TINY), "--set", "train.amp=true"], "[train] amp=True needs a CUDA"),
        (["launch", str(TINY), "--set", "study.confirm_seeds=1000000"], "at most 100"),
        (["ablate", str(TINY), "--factor", "with_pool2", "--seeds", "1000000"], "[1, 100]"),
        (["launch", str(TINY), "--set", 'measure.include_head="no"'], "include_head must be bool"),
        (["launch", str(TINY), "--set", 'study.enqueue_presets="x"'], "must be list or tuple"),
        (["launch", str(TINY), "--set", "study.n_startup_trials=-1"], "must be an int >= 0"),
        (["launch", str(TINY), "--set", 'wandb.mode="off"'], "[wandb] mode must be one of"),
        (["launch", str(TINY), "--storage", "sqlite:///:memory:"], "an in-memory database"),
    ],
)
def test_usage_errors_are_exit_2_before_anything_is_written(
    argv: list[str], message: str, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([*argv, *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert files_under(scratch) == []


FOLDER_IS_FILE = "must be a folder, not an existing file; got 'taken'"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # NOTE: ablate's --out is a folder written after the training: checked before it
        (["ablate", str(TINY), "--factor", "with_pool2", "--out", "taken"], "--out"),
        (["ablate", str(TINY), "--factor", "with_pool2", "--out", ""], "--out"),
        (["ablate", str(TINY), "--factor", "with_pool2", "--runs-dir", "taken"], "--runs-dir"),
        (["launch", str(TINY), "--runs-dir", "taken"], "--runs-dir"),
        (["launch", str(TINY), "--runs-dir", "taken/sub"], "--runs-dir"),
        (["table", "build", str(TINY), "--runs-dir", "taken"], "--runs-dir"),
        (["worker", "--runs-dir", "taken"], "--runs-dir"),
        (["pareto", "--runs-dir", "taken"], "--runs-dir"),
        (["export", "--runs-dir", "taken"], "--runs-dir"),
        (["reproduce", "--runs-dir", "taken"], "--runs-dir"),
    ],
)
def test_an_output_folder_that_is_a_file_is_exit_2_before_anything_is_written(
    argv: list[str], message: str, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (scratch / "taken").write_text("mine\n")
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"r3dnas {argv[0]}: error: {message}")
    value = argv[argv.index(message) + 1]
    if value == "taken":
        assert err.endswith(f"{message} {FOLDER_IS_FILE}"), err
    elif value:
        assert err.endswith(
            f"cannot be written: {str(scratch / 'taken')!r} is a file, not a folder"
        )
    assert files_under(scratch) == ["taken"] and (scratch / "taken").read_text() == "mine\n"


def test_argparse_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["pareto", "--format", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_set_overrides_reach_the_stored_spec(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["launch", str(TINY), "--n-trials", "1", "--set", "train.lr=0.01", *QUIET]
    # a dotted key reaches one dimension, as the file's `layer3.inflate = [...]` line does
    nested = ["--set", 'space.dimensions.layer3.inflate=["all"]']
    assert run_cli([*argv, "--set", "train.optimizer=sgd", "--set", "data.num_val_clips=4",
                    *nested]) == 0  # fmt: skip
    study = optuna.load_study(study_name="tiny", storage="sqlite:///runs/tiny.db")
    spec = study.user_attrs
    assert spec["spec"]["train"]["lr"] == 0.01 and spec["spec"]["train"]["optimizer"] == "sgd"
    assert spec["spec"]["data"]["num_val_clips"] == 4
    dimensions = spec["spec"]["space"]["dimensions"]
    assert dimensions["layer3"] == {"inflate": ["all"]}
    assert dimensions["layer4"] == {"inflate": ["none", "all"]}  # the others are kept
    assert study.trials[0].user_attrs["config"]["inflate"][2] == [1]


def test_unreadable_inputs_are_one_line_errors(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec that is not UTF-8, or a folder or a foreign file where a spec or a journal
    belongs: one line, exit 2, nothing written (each was a UnicodeDecodeError,
    IsADirectoryError or JSONDecodeError traceback)."""
    tmp_path = scratch / "inputs"
    tmp_path.mkdir()
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(TINY.read_bytes().replace(b'name = "tiny"', b'name = "caf\xe9"'))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    named = tmp_path / "named.toml"  # dimensions beside a shipped space's name
    named.write_text(
        '[study]\n[space]\nname = "default"\n[space.dimensions]\nwith_pool2 = [true]\n'
    )
    not_a_journal = tmp_path / "notes.log"
    not_a_journal.write_text("not a journal\nat all\n")
    cases = [
        (["launch", str(latin1)], "not UTF-8 text (byte 0xe9 at offset"),
        (["launch", str(folder)], "cannot read study spec file"),
        (["pareto", "--storage", f"journal://{not_a_journal}"], "not an Optuna journal file"),
        (["pareto", "--storage", f"journal://{tmp_path}"], f"names the folder {tmp_path}"),
        (["data", str(TINY), "--workers", "0"], "--workers must be a positive int"),
        (
            ["launch", str(TINY), "--storage", f"sqlite:///{not_a_journal}/s.db"],
            f"cannot make the folder {not_a_journal}",
        ),
        (["launch", str(named)], "a named space (name = 'default') takes only input_shape"),
    ]
    before = files_under(scratch)
    for argv, message in cases:
        assert run_cli([*argv, *(QUIET if argv[0] == "launch" else [])]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert files_under(scratch) == before
    assert not_a_journal.read_text() == "not a journal\nat all\n"


def test_resuming_with_another_spec_says_what_differs(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed study with another space or training mixed incomparable trials on one front
    without a word; resuming with the same spec says nothing."""
    argv = ["launch", str(TINY), "--n-trials", "1", *QUIET]
    assert run_cli(argv) == 0
    assert run_cli(argv) == 0
    assert "note:" not in capsys.readouterr().err
    changed = ["--set", "train.lr=0.01", "--set", "data.noise=0.2"]
    assert run_cli([*argv, "--n-trials", "2", *changed]) == 0
    err = capsys.readouterr().err
    assert "note: study 'tiny' was launched with another spec; this run differs in " in err
    assert "data.noise, train.lr." in err
    # another search space: Optuna cannot change a parameter's choices (every trial failed)
    space = ["--set", 'space.dimensions.layer3.inflate=["all"]']
    assert run_cli([*argv, "--n-trials", "3", *space]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "r3dnas launch: error: study 'tiny' was launched with another search space (this spec "
        "differs in space.dimensions.layer3.inflate); use another --study name"
    )
    assert len(optuna.load_study(study_name="tiny", storage="sqlite:///runs/tiny.db").trials) == 2
