"""One Ctrl-C, one ``KeyboardInterrupt``: the signals that follow it do not break its clean-up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from studies.cli import main
from studies.run import interrupts
from studies.run.interrupts import (
    interrupt_requested,
    interruptible,
    interrupts_as_keyboard_interrupt,
)


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


# ------------------------------------------------------------------- deferred
def test_deferred_a_signal_outside_a_trial_is_recorded_not_raised() -> None:
    with interrupts_as_keyboard_interrupt(deferred=True):
        _signal_self(signal.SIGTERM)  # Optuna asking or telling: nothing raised here
        assert interrupt_requested()
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            with interruptible():  # the trial it came before stops on entry
                pytest.fail("the trial's work must not start")


def test_deferred_a_signal_inside_a_trial_raises_at_once() -> None:
    with interrupts_as_keyboard_interrupt(deferred=True):
        with pytest.raises(KeyboardInterrupt, match="signal 2"):
            with interruptible():
                _signal_self(signal.SIGINT)
                pytest.fail("the signal must raise inside the trial")
        _signal_self(signal.SIGTERM)  # the launcher's SIGTERM during the clean-up
    assert interrupts._requested == [signal.SIGINT, signal.SIGTERM]


def test_deferred_a_signal_after_the_window_raises_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone who insists can still break a loop stuck outside a trial (a hung storage)."""
    monkeypatch.setattr(interrupts, "REPEAT_WINDOW_S", 0.0)
    with interrupts_as_keyboard_interrupt(deferred=True):
        _signal_self(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            _signal_self(signal.SIGINT)


def test_after_the_block_signals_are_not_deferred() -> None:
    with interrupts_as_keyboard_interrupt(deferred=True):
        pass
    with interrupts_as_keyboard_interrupt():
        with pytest.raises(KeyboardInterrupt):
            _signal_self(signal.SIGINT)


def _run_loop_signalled(tmp_path: Path, where: str) -> tuple[str, list[FrozenTrial]]:
    """The run loop over two trials, with SIGTERM sent to this process ``where``: in Optuna's
    ask (the sampler's ``before_trial``), in the objective, or in Optuna's tell (the sampler's
    ``after_trial``, before the state is written)."""
    from studies.run.loop import run_trials
    from studies.study.storage import open_storage

    class SignalledSampler(optuna.samplers.RandomSampler):
        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            if where == "ask":
                _signal_self(signal.SIGTERM)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            if where == "tell":
                _signal_self(signal.SIGTERM)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        study_name=where, storage=open_storage(f"sqlite:///{tmp_path}/{where}.db"),
        sampler=SignalledSampler(seed=0),
    )  # fmt: skip

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        x = trial.suggest_float("x", 0, 1)
        if where == "objective":
            _signal_self(signal.SIGTERM)
        trial.set_user_attr("state", "complete")
        return (x,)

    stop = run_trials(
        study, objective, n_trials=2, timeout_s=60, progress=False, label="t", reap=lambda: None
    )
    return stop, study.get_trials(deepcopy=False)


@pytest.mark.parametrize("where", ["ask", "objective", "tell"])
def test_the_run_loop_leaves_no_trial_running_wherever_the_signal_lands(
    tmp_path: Path, where: str
) -> None:
    """A signal in Optuna's ask fails the asked trial as interrupted (it is rerun); one in its
    tell keeps the finished result. Either way the loop stops, and no trial is left RUNNING
    (which a resumed study would wait a heartbeat grace for)."""
    from studies.run.budget import was_cut_short
    from studies.run.loop import INTERRUPTED_BEFORE_START

    stop, trials = _run_loop_signalled(tmp_path, where)
    assert stop == "interrupted"
    assert len(trials) == 1
    assert trials[0].state != TrialState.RUNNING
    if where == "tell":
        assert trials[0].state == TrialState.COMPLETE
    else:
        assert was_cut_short(trials[0])
    if where == "ask":
        assert trials[0].user_attrs["fail_reason"] == INTERRUPTED_BEFORE_START


def test_sigterm_before_the_run_loop_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker stopped while it still imports torch or builds its data died of the signal
    (exit -15, no word); now any command ends as on Ctrl-C, and the handler is put back."""
    import studies.cli

    def slow_start(args: object) -> int:
        _signal_self(signal.SIGTERM)
        pytest.fail("SIGTERM must stop the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(studies.cli, "_version", slow_start)
    assert main(["version"]) == 130
    assert capsys.readouterr().err.strip() == "r3dnas version: interrupted"
    assert signal.getsignal(signal.SIGTERM) is before
