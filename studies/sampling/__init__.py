"""A cost-aware, noise-aware search (``sampler = "cost_aware"``) and the wrapper that keeps any
sampler from proposing a network the study already measured (:class:`DistinctNetworks`)."""

from __future__ import annotations

from studies.sampling.claims import EXHAUSTED_ATTR, space_exhausted
from studies.sampling.distinct import DistinctNetworks
from studies.sampling.sampler import CostAwareSampler, check_cost_aware

__all__ = [
    "EXHAUSTED_ATTR",
    "CostAwareSampler",
    "DistinctNetworks",
    "check_cost_aware",
    "space_exhausted",
]
