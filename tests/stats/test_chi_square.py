"""Chi-square quantiles (Wilson-Hilferty) against tabled values and by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.stats.chi_square import chi_square_quantile

#: (p, df, exact quantile) from the standard table.
TABLE = [
    (0.90, 2, 4.605),
    (0.95, 2, 5.991),
    (0.99, 2, 9.210),
    (0.95, 5, 11.070),
    (0.99, 9, 21.666),
    (0.99, 19, 36.191),
    (0.999, 9, 27.877),
]


@pytest.mark.parametrize(("p", "df", "exact"), TABLE)
def test_quantiles_are_within_one_percent_of_the_table(p: float, df: int, exact: float) -> None:
    assert chi_square_quantile(p, df) == pytest.approx(exact, rel=0.01)


@pytest.mark.parametrize("df", [2, 4, 9])
def test_the_quantile_is_exceeded_at_its_nominal_rate(df: int) -> None:
    draws = np.random.default_rng(df).chisquare(df, size=400_000)
    for p in (0.9, 0.99):
        rate = float((draws > chi_square_quantile(p, df)).mean())
        assert rate == pytest.approx(1 - p, rel=0.08)


def test_bad_arguments_are_refused() -> None:
    for p, df in ((0.0, 3), (1.0, 3), (0.5, 0)):
        with pytest.raises(ValueError):
            chi_square_quantile(p, df)
