"""The enumeration cache: a later process reads the space's networks and costs back instead of
enumerating them, gets the very same candidates, and never reads another spec's or another
code version's file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studies.sampling.enumeration_cache import (
    code_version,
    enumeration_key,
    load_enumeration,
)
from studies.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
_PRINT = """
import hashlib, sys
from studies.sampling.candidates import build_candidates
from studies.study.spec import load_spec
c = build_candidates(load_spec("cpu_default", overrides=sys.argv[1:]))
text = repr((c.digests, c.params, c.gflops.tolist(), c.params_m.tolist(), c.features.tolist()))
print(len(c), hashlib.sha256(text.encode()).hexdigest())
"""


def _candidates_in_a_new_process(cache: Path, *overrides: str) -> str:
    env = {**os.environ, "R3DNAS_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _PRINT, *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return proc.stdout.strip()


def test_a_later_process_reads_the_same_candidates_back(tmp_path: Path) -> None:
    first = _candidates_in_a_new_process(tmp_path)
    files = list((tmp_path / "candidates").glob("*.json"))
    assert first.startswith("186 ") and len(files) == 1
    key = enumeration_key(load_spec("cpu_default"))
    assert files[0].name == f"{key}.json"
    written = files[0].stat().st_mtime_ns
    assert _candidates_in_a_new_process(tmp_path) == first
    assert files[0].stat().st_mtime_ns == written  # read, not enumerated and written again


def test_a_damaged_file_is_enumerated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R3DNAS_CACHE_DIR", str(tmp_path))
    first = _candidates_in_a_new_process(tmp_path)
    (path,) = (tmp_path / "candidates").glob("*.json")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "gflops": data["gflops"][:-1]}))
    assert load_enumeration(path.stem) is None
    assert _candidates_in_a_new_process(tmp_path) == first
    path.write_text("{not json")
    assert _candidates_in_a_new_process(tmp_path) == first
    assert load_enumeration(path.stem) is not None  # written again, whole


def test_the_key_changes_with_what_decides_the_networks() -> None:
    base = load_spec("cpu_default")
    keys = {
        enumeration_key(base),
        enumeration_key(
            load_spec("cpu_default", overrides=["measure.input_shape=[1, 3, 8, 96, 96]"])
        ),
        enumeration_key(load_spec("cpu_default", overrides=["measure.include_head=true"])),
        enumeration_key(load_spec("cpu_default", overrides=["data.num_classes=7"])),
        enumeration_key(load_spec("i3d_r50_gpu")),
    }
    assert len(keys) == 5
    # the objectives do not decide the networks: one file serves both studies
    top1_only = load_spec("cpu_default", overrides=['study.objectives=["top1", "gflops"]'])
    assert enumeration_key(top1_only) == enumeration_key(base)
    assert len(code_version()) == 64


def test_an_unwritable_cache_folder_only_costs_time(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert _candidates_in_a_new_process(blocked).startswith("186 ")
