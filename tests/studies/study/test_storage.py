"""Claiming a waiting trial is atomic across processes, on every storage backend.

Several worker processes race to take the same enqueued trials at the same instants; each
trial must be taken by exactly one of them. Before SQLite transactions began with
``BEGIN IMMEDIATE`` this failed on SQLite about one round in three (two workers ran one trial,
and the loser's ``tell`` crashed with "Cannot tell a COMPLETE trial").
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
import uuid

import optuna

from studies.study.storage import open_storage

ROUNDS = 12
PROCESSES = 4
POP_AT_THE_SAME_INSTANTS = """
import sys, time, optuna
from studies.study.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, name, start, rounds = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
study = optuna.load_study(study_name=name, storage=open_storage(url))
for i in range(rounds):
    while time.time() < start + i * 0.2:
        pass
    taken = study._pop_waiting_trial_id()
    if taken is not None:
        print(taken, flush=True)
"""


def test_each_waiting_trial_is_taken_by_exactly_one_process(storage_url: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"race-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=open_storage(storage_url))
    for i in range(ROUNDS):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    start = time.time() + 4  # every process has loaded the study by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", POP_AT_THE_SAME_INSTANTS, storage_url, name, str(start)]
            + [str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    taken: collections.Counter[str] = collections.Counter()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        taken.update(out.split())
    twice = {trial_id: n for trial_id, n in taken.items() if n > 1}
    assert not twice, f"trials taken by more than one process: {twice}"
    assert len(taken) == ROUNDS
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    assert len(running) == ROUNDS
