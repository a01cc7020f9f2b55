"""studies: Optuna studies over the search space, their Pareto fronts and reproduction.

Modules here import torch, optuna, wandb and pandas inside functions, so that the CLI's
``--help`` stays instant.
"""

from __future__ import annotations

__all__: list[str] = []
