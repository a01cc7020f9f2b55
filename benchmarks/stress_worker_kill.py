"""Stress the crash safety of ``r3dnas worker``: three workers on one study, one SIGKILLed.

The scenario of ``tests/studies/test_workers.py::test_three_workers_one_killed_nothing_lost``,
repeated ``--runs`` times with the kill landing at varied moments (``--kill-at``: as soon as
the victim's trial exists, when it has its configuration, after its first epoch, or after a
random delay), optionally beside ``--hogs`` busy-looping processes. A run *hangs* when a
surviving worker has not exited ``--deadline`` seconds after the kill; the script then prints
the study's trials and the survivors' Python stacks, and kills them.

Exit 0 when no run hung and every run ended with the full budget completed.

    .venv/bin/python benchmarks/stress_worker_kill.py --runs 20 --hogs 2 --storage sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = ROOT / "tests" / "studies" / "specs" / "tiny.toml"
MOMENTS = ("created", "digest", "epoch", "random", "asked")
WORKER = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "from studies.cli import main; sys.exit(main())"
)


def _hog() -> None:
    while True:
        pass


def _url(kind: str, folder: Path) -> str:
    return f"sqlite:///{folder / 'study.db'}" if kind == "sqlite" else f"journal://{folder}/s.log"


def _victim(study: object, pids: set[int], moment: str) -> tuple[int, int] | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # type: ignore[attr-defined]
        if moment == "asked" and "worker" not in t.user_attrs:
            # NOTE: just created by ask(); whose it is is not recorded yet: kill one at random
            # (a third of the time its owner, before or just after its first heartbeat).
            return t.number, random.choice(sorted(pids))
        pid = int(t.user_attrs.get("worker", "x:0").rsplit(":", 1)[1])
        if pid not in pids:
            continue
        attrs = t.user_attrs
        if (
            moment == "created"
            or (moment == "digest" and "digest" in attrs)
            or (moment == "epoch" and attrs.get("history"))
        ):
            return t.number, pid
    return None


def _had_heartbeat(url: str, number: int) -> str:
    """Whether Optuna had recorded a heartbeat of trial ``number`` when it was killed."""
    import sqlite3

    if not url.startswith("sqlite:///") or number < 0:
        return "n/a"
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)) as db:
        rows = db.execute(
            "SELECT COUNT(*) FROM trial_heartbeats h JOIN trials t ON h.trial_id = t.trial_id "
            "WHERE t.number = ?",
            (number,),
        ).fetchone()
    return "yes" if rows[0] else "NO"


def one_run(kind: str, moment: str, deadline_s: float, folder: Path) -> tuple[bool, str]:
    """One scenario; ``(hung, summary)``."""
    from studies.run.budget import is_completed
    from studies.run.launch import prepare_study
    from studies.study.spec import parse_spec
    from studies.study.storage import storage_settings

    data = tomllib.loads(TINY.read_text())
    data["train"]["epochs"] = 4
    spec = parse_spec(data, source="tiny", base_dir=Path.cwd())
    name = f"kill-{uuid.uuid4().hex[:8]}"
    url = _url(kind, folder)
    n_trials = 6
    study = prepare_study(
        spec, study_name=name, storage_url=url, n_trials=n_trials, runs_dir=folder,
        settings=storage_settings(1, 5),
    )  # fmt: skip
    args = ["worker", "--study", name, "--storage", url, "--quiet", "--wandb", "disabled",
            "--heartbeat", "1", "--grace", "5"]  # fmt: skip
    # NOTE: a lock dir of its own: timers pause this study's workers only, not the machine's.
    env = dict(os.environ, PYTHONPATH=str(ROOT), R3DNAS_LOCK_DIR=str(folder / "lock"))
    procs = {}
    for _ in range(3):
        p = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
        procs[p.pid] = p
    victim = None
    t0 = time.monotonic()
    delay = random.uniform(0.5, 12.0)
    while victim is None and time.monotonic() - t0 < 180:
        time.sleep(0.002 if moment in ("created", "asked") else 0.05)
        if moment == "random":
            if time.monotonic() - t0 >= delay:
                victim = (-1, random.choice(list(procs)))
        else:
            victim = _victim(study, set(procs), moment)
    if victim is None:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGKILL)
        return False, "no victim seen"
    number, pid = victim
    os.killpg(pid, signal.SIGKILL)
    procs[pid].wait()
    beat = _had_heartbeat(url, number)
    end = time.monotonic() + deadline_s
    hung = []
    codes = {}
    for p in procs.values():
        if p.pid == pid:
            continue
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
            codes[p.pid] = p.returncode
        except subprocess.TimeoutExpired:
            hung.append(p)
    trials = study.get_trials(deepcopy=False)
    complete = sum(is_completed(t) for t in trials)
    summary = (f"killed trial {number} (pid {pid}, Optuna heartbeat row: {beat}); "
               f"{complete}/{n_trials} complete; exit {codes}")  # fmt: skip
    if hung or complete != n_trials or any(codes.values()):
        rows = [
            (t.number, t.state.name, t.user_attrs.get("state"), t.user_attrs.get("worker"),
             t.system_attrs.get("failed_trial"), str(t.datetime_start)[11:23])
            for t in trials
        ]  # fmt: skip
        print(f"  PROBLEM: {summary}")
        for row in rows:
            print("   ", row)
        for p in hung:
            try:
                state = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                wchan = Path(f"/proc/{p.pid}/wchan").read_text()
            except OSError:
                state = wchan = "?"
            print(f"    survivor {p.pid}: state {state} wchan {wchan}")
            os.kill(p.pid, signal.SIGUSR1)
        time.sleep(1)
        for p in hung:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate()
            print("    stderr of", p.pid, ":", err.decode()[-3000:])
        for p in procs.values():
            if p.pid != pid and p not in hung and p.returncode:
                print("    stderr of", p.pid, ":", p.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
    return bool(hung), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--storage", choices=("sqlite", "journal", "both"), default="sqlite")
    parser.add_argument("--kill-at", choices=(*MOMENTS, "mixed"), default="mixed")
    parser.add_argument("--hogs", type=int, default=0, help="busy-looping processes beside")
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    hangs = problems = 0
    try:
        for i in range(args.runs):
            moment = MOMENTS[i % len(MOMENTS)] if args.kill_at == "mixed" else args.kill_at
            kind = ("sqlite", "journal")[i % 2] if args.storage == "both" else args.storage
            t = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="r3dnas-stress-") as folder:
                hung, summary = one_run(kind, moment, args.deadline, Path(folder))
            hangs += hung
            problems += "PROBLEM" in summary or hung or "6/6" not in summary
            load = os.getloadavg()[0]
            took = time.monotonic() - t
            print(f"run {i + 1}/{args.runs} [{kind}, kill at {moment}, load {load:.1f}]: "
                  f"{'HANG ' if hung else ''}{summary} ({took:.0f} s)", flush=True)  # fmt: skip
    finally:
        for h in hogs:
            h.terminate()
    print(f"{args.runs} runs, {hangs} hangs, {problems} with a problem "
          f"({args.storage}, {args.hogs} hogs, kill at {args.kill_at})")  # fmt: skip
    return 1 if hangs or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
