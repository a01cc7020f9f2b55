#!/usr/bin/env bash
# Create ./.venv (or $R3DNAS_VENV) and install r3dnas with its test extras.
#
# On a machine without CUDA the CPU build of torch goes in first, so pip never downloads the
# multi-GB CUDA build; with CUDA (nvidia-smi present) pip's ordinary torch is used. The project
# itself does not pin torch, so GPU users keep whatever CUDA build they have.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${R3DNAS_VENV:-.venv}"
PY="${PYTHON:-python3}"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: CUDA found; installing torch from the package index"
    "${PIP[@]}" install torch
  else
    echo "setup: no CUDA; installing the CPU build of torch first"
    # A torch wheel already on this machine (pip's find-links), with its dependencies from the
    # index; else PyTorch's CPU index; else the package index.
    if "${PIP[@]}" install --no-index --no-deps torch 2>/dev/null; then
      "${PIP[@]}" install torch
    else
      "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu \
          --timeout 15 --retries 1 \
        || "${PIP[@]}" install torch
    fi
  fi
fi

"${PIP[@]}" install -e ".[test]"
# mmaction2 for the tests: the oracle (single files executed by path) and its training Runner on
# an exported config. --no-deps: what its Runner needs (mmcv-lite 2.1, einops, scipy,
# importlib_metadata) comes with the test extras above, without its opencv-contrib-python.
"${PIP[@]}" install --no-deps "mmaction2==1.2.0"
echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
