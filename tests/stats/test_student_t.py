"""Student's t without scipy, checked against scipy (a dev dependency)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from recallwatch.stats.student_t import student_t_cdf, student_t_quantile


@pytest.mark.parametrize("df", [0.5, 1.0, 2.5, 4.0, 9.7, 30.0, 1e4, 1e8, np.inf])
def test_cdf_matches_scipy(df: float) -> None:
    t = np.concatenate([np.linspace(-40, 40, 161), [-1e-3, 0.0, 1e-3]])
    # Above 1e7 degrees of freedom the normal stands in (relative error ~1e-6 in the far tail).
    rel = 1e-9 if df < 1e7 else 1e-5
    assert student_t_cdf(t, df) == pytest.approx(scipy.stats.t.cdf(t, df), abs=1e-12, rel=rel)


def test_cdf_broadcasts_and_handles_the_edges() -> None:
    got = student_t_cdf(np.array([[-2.0], [2.0]]), np.array([3.0, 30.0]))
    assert got.shape == (2, 2)
    assert got == pytest.approx(scipy.stats.t.cdf([[-2.0], [2.0]], [3.0, 30.0]))
    edges = student_t_cdf(np.array([-np.inf, np.inf, np.nan]), 5.0)
    assert edges[0] == 0.0 and edges[1] == 1.0 and np.isnan(edges[2])
    with pytest.raises(ValueError, match="positive"):
        student_t_cdf(1.0, 0.0)


@pytest.mark.parametrize(("p", "df"), [(0.975, 3.0), (0.001, 7.5), (0.5, 2.0), (0.99, 1e9)])
def test_quantile_matches_scipy(p: float, df: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(scipy.stats.t.ppf(p, df), abs=1e-7)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, df)
