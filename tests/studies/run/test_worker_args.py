"""A worker's command line as ``launch --workers N`` writes it is what ``r3dnas worker`` reads."""

from __future__ import annotations

import pytest

from studies.cli import build_parser
from studies.run.worker_args import WorkerArgs

EVERY_SETTING = WorkerArgs(
    study_name="s1", storage="sqlite:///runs/s1.db", runs_dir="elsewhere", device="cuda:1",
    wandb_mode="disabled", quiet=True, heartbeat_s=7, grace_s=21, stall_s=90,
)  # fmt: skip


@pytest.mark.parametrize(
    "args", [EVERY_SETTING, WorkerArgs(), WorkerArgs(study_name="only-a-name", quiet=False)]
)
def test_the_written_command_line_parses_back_to_the_same_settings(args: WorkerArgs) -> None:
    parsed = build_parser().parse_args(args.argv())
    assert parsed.command == "worker"
    assert WorkerArgs.from_namespace(parsed) == args


def test_the_command_runs_this_interpreter_on_the_cli_module() -> None:
    import sys

    command = EVERY_SETTING.command()
    assert command[:3] == [sys.executable, "-m", "studies.cli"]
    assert command[3:] == EVERY_SETTING.argv()
