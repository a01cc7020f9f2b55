"""One Ctrl-C, one ``KeyboardInterrupt``: the signals that follow it do not break its clean-up."""

from __future__ import annotations

import os
import signal
import time

import pytest

from studies.cli import main
from studies.run import interrupts
from studies.run.interrupts import interrupt_requested, interrupts_as_keyboard_interrupt


def _signal_self(signum: int) -> None:
    """Send ``signum`` to this process and give the handler a moment to run."""
    os.kill(os.getpid(), signum)
    time.sleep(0.2)


def test_the_launcher_s_sigterm_after_ctrl_c_is_not_raised_again() -> None:
    with interrupts_as_keyboard_interrupt():
        with pytest.raises(KeyboardInterrupt, match="signal 2"):
            _signal_self(signal.SIGINT)
        # the first interrupt's clean-up (Optuna marking the trial failed) runs here, when
        # the launcher stops its workers with SIGTERM: recorded, not raised
        _signal_self(signal.SIGTERM)
        assert interrupt_requested()
    assert interrupts._requested == [signal.SIGINT, signal.SIGTERM]


def test_a_signal_after_the_window_raises_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupts, "REPEAT_WINDOW_S", 0.0)
    with interrupts_as_keyboard_interrupt():
        with pytest.raises(KeyboardInterrupt):
            _signal_self(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            _signal_self(signal.SIGTERM)


def test_each_block_starts_with_no_request() -> None:
    with interrupts_as_keyboard_interrupt():
        with pytest.raises(KeyboardInterrupt):
            _signal_self(signal.SIGINT)
    with interrupts_as_keyboard_interrupt():
        assert not interrupt_requested()
        with pytest.raises(KeyboardInterrupt):  # a new block's first signal raises at once
            _signal_self(signal.SIGINT)


def _stopped_by_a_library_error(args: object) -> int:
    """A command interrupted whose library then fails in its own clean-up (what Optuna's
    ``_run_trial`` did: UnboundLocalError after a KeyboardInterrupt inside its ``tell``)."""
    with interrupts_as_keyboard_interrupt():
        try:
            _signal_self(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        raise UnboundLocalError("cannot access local variable 'updated_state'")


def test_an_error_while_stopping_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import studies.cli

    monkeypatch.setattr(studies.cli, "_version", _stopped_by_a_library_error)
    assert main(["version"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["r3dnas version: interrupted (UnboundLocalError while stopping)"]
    # with --debug the traceback stays
    with pytest.raises(UnboundLocalError):
        main(["--debug", "version"])


def test_the_same_error_without_an_interrupt_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import studies.cli

    def broken(args: object) -> int:
        with interrupts_as_keyboard_interrupt():
            raise UnboundLocalError("a bug")

    monkeypatch.setattr(studies.cli, "_version", broken)
    with pytest.raises(UnboundLocalError):
        main(["version"])
