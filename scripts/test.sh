#!/usr/bin/env bash
# Set up the virtualenv if needed (scripts/setup.sh), then run the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` or `scripts/test.sh -k oracle`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${R3DNAS_VENV:-.venv}"
[ -x "$VENV/bin/pytest" ] || bash scripts/setup.sh
exec "$VENV/bin/python" -m pytest "$@"
