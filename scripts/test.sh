#!/usr/bin/env bash
# Set up the virtualenv if needed (scripts/setup.sh), then run the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` or `scripts/test.sh -k oracle`.
# The suite runs in R3DNAS_TEST_PROCESSES processes (pytest-xdist; default 2, one per core of
# the 2-core CI machine; 1 runs it in this process): most of its time is spent waiting for the
# worker subprocesses, the tools and the trainings it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${R3DNAS_VENV:-.venv}"
[ -x "$VENV/bin/pytest" ] || bash scripts/setup.sh
PROCESSES="${R3DNAS_TEST_PROCESSES:-2}"
if [ "$PROCESSES" -gt 1 ]; then
  set -- -n "$PROCESSES" --dist worksteal "$@"
fi
exec "$VENV/bin/python" -m pytest "$@"
