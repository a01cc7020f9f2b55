"""Defaults every stage of a study shares, written once."""

from __future__ import annotations

__all__ = ["RUNS_DIR"]

# The folder a study's files go to unless ``--runs-dir`` says otherwise: the default SQLite
# storages ``<runs>/<study>.db``, wandb runs, kept weights and ablation outputs.
RUNS_DIR = "runs"
