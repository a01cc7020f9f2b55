"""Stress clean interrupts: SIGTERM lands at a random moment of a worker's ablation grid.

The scenario of ``tests/studies/run/test_workers.py::
test_a_resumed_ablation_reruns_interrupted_points_and_nothing_off_grid``, repeated ``--runs``
times with the signal sent after a random delay instead of in training. Tiny trials end within
a fraction of a second, so the signal lands anywhere: in training, while Optuna asks for a trial
or records one, while the worker starts or between trials. Each run checks what must hold
wherever it lands:

* the worker exits 130 (0 when it had already finished; killed by the signal, -15, only
  before Python reached r3dnas's code or after its work was done);
* no trial is left RUNNING (nobody would run it; a resumed study waited a grace period for it);
* every FAIL trial was cut short (``was_cut_short``), so it is run again;
* a resumed worker then completes the grid: every point x seed exactly once, nothing off-grid.

Printed: per run the delay, where the signal landed (``in a trial``: one trial FAIL
"interrupted"; ``between trials``: none; ``at start-up``: no trial touched yet; ``while
exiting``: the grid was done) and the verdict; at the end the counts. Exit 0 when every run held.

    .venv/bin/python benchmarks/stress_interrupts.py --runs 20 --storage sqlite
"""

from __future__ import annotations

import argparse
import json
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
WORKER = "import sys; from studies.cli import main; sys.exit(main())"
FACTORS = ["with_pool2", "layer4.inflate"]


def _worker(name: str, url: str) -> subprocess.Popen[bytes]:
    args = ["worker", "--study", name, "--storage", url, "--quiet", "--wandb", "disabled"]
    return subprocess.Popen([sys.executable, "-c", WORKER, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _wait(
    proc: subprocess.Popen[bytes], timeout_s: float, hung: str, problems: list[str]
) -> bytes:
    """``proc``'s stderr once it exits; killed, and ``hung`` added to ``problems``, when it
    has not exited within ``timeout_s``."""
    try:
        return proc.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        problems.append(f"hung: {hung}")
        return proc.communicate()[1]


def one_run(kind: str, folder: Path, delay_s: float, epochs: int) -> tuple[str, list[str]]:
    """``(where the signal landed, problems)`` of one interrupted and resumed grid."""
    import optuna
    from optuna.trial import TrialState

    from studies.run.ablation import prepare_ablation
    from studies.run.budget import is_completed, was_cut_short
    from studies.study.spec import parse_spec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    data = tomllib.loads(TINY.read_text())
    data["train"]["epochs"] = epochs
    spec = parse_spec(data, source="tiny", base_dir=ROOT)
    name = f"stress-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{folder / 's.db'}" if kind == "sqlite" else f"journal://{folder / 's.log'}"
    args = dict(factors=FACTORS, seeds=2, study_name=name, storage_url=url, runs_dir=folder)
    study, total = prepare_ablation(spec, **args)  # type: ignore[arg-type]
    proc = _worker(name, url)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    problems: list[str] = []
    err = _wait(proc, 120, "the worker had not exited 120 s after the SIGTERM", problems)
    trials = study.get_trials(deepcopy=False)
    # NOTE: a signal before Python has imported the CLI (its first ~0.3 s) kills the process
    # as it would any program; it has touched nothing then
    untouched = all(t.state == TrialState.WAITING for t in trials)
    # NOTE: so does one after the command returned, its work done (Python shutting down)
    done = sum(is_completed(t) for t in trials) == total
    if proc.returncode not in (0, 130) and not (proc.returncode == -15 and (untouched or done)):
        problems.append(f"exit {proc.returncode}: {err.decode()[-300:]!r}")
    running = [t.number for t in trials if t.state == TrialState.RUNNING]
    if running:
        problems.append(f"left RUNNING: {running}")
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if any(not was_cut_short(t) for t in failed):
        problems.append("a FAIL trial not marked cut short")
    landed = "in a trial" if failed else ("finished" if proc.returncode == 0 else "between trials")
    landed = "at start-up" if untouched else landed
    landed = "while exiting" if done and proc.returncode != 0 else landed
    prepare_ablation(spec, **args)  # type: ignore[arg-type]
    proc = _worker(name, url)
    err = _wait(proc, 300, "the resumed worker had not finished in 300 s", problems)
    if proc.returncode != 0:
        problems.append(f"resume exit {proc.returncode}: {err.decode()[-300:]!r}")
    complete = [t for t in study.get_trials(deepcopy=False) if is_completed(t)]
    points = {(json.dumps(t.user_attrs.get("factors"), sort_keys=True), t.user_attrs["seed"])
              for t in complete}  # fmt: skip
    if not (len(complete) == len(points) == total):
        problems.append(f"grid: {len(complete)} complete, {len(points)} distinct of {total}")
    return landed, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite")
    parser.add_argument("--max-delay", type=float, default=6.0,
                        help="the signal comes after a delay drawn in [0.5, this] s")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=4, help="per trial (4: ~0.3 s a trial)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: dict[str, int] = {}
    bad = 0
    for run in range(args.runs):
        delay = rng.uniform(0.5, args.max_delay)
        with tempfile.TemporaryDirectory() as tmp:
            landed, problems = one_run(args.storage, Path(tmp), delay, args.epochs)
        counts[landed] = counts.get(landed, 0) + 1
        bad += bool(problems)
        verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"run {run + 1:2d}: SIGTERM after {delay:4.2f} s, {landed:14s} {verdict}",
              flush=True)  # fmt: skip
    landings = ", ".join(f"{n} {where}" for where, n in counts.items())
    print(f"{args.runs} runs on {args.storage}: {landings}; {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
