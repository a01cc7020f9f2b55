"""The exact t quantiles of the ablation intervals against scipy (a test dependency only)."""

from __future__ import annotations

import math

import pytest

from studies.core.student_t import t_cdf, t_quantile
from studies.run.ablation import t95

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 10, 29, 30, 31, 32, 45, 60, 100, 1000, 10**5, 2.5])
@pytest.mark.parametrize("p", [0.5001, 0.6, 0.9, 0.975, 0.995, 0.9999, 0.025, 0.1])
def test_quantile_and_cdf_match_scipy(dof: float, p: float) -> None:
    expected = float(stats.t.ppf(p, dof))
    assert t_quantile(p, dof) == pytest.approx(expected, rel=1e-8)
    assert t_cdf(expected, dof) == pytest.approx(p, abs=1e-10)


def test_t95_is_exact_where_the_old_table_was_not() -> None:
    # the table ended at 30 and used 1.96 beyond: 2.040 at 31 (intervals 4% too narrow)
    assert t95(31) == pytest.approx(2.0395134464, rel=1e-9)
    assert t95(1) == pytest.approx(12.7062047362, rel=1e-9)
    assert math.isnan(t95(0)) and math.isnan(t_quantile(1.0, 3))
