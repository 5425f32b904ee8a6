"""The chi-square distribution's quantiles, without scipy (Wilson-Hilferty).

``chi_square_quantile(p, k)`` is ``k (1 - 2/(9k) + z_p sqrt(2/(9k)))^3``: the cube root of a
chi-square variable divided by its degrees of freedom is nearly normal. Within 1% of the exact
quantile at p in [0.9, 0.999] from 2 degrees of freedom on (``tests/stats/test_chi_square.py``
checks it against tabled values and by simulation). Pure: no I/O.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["chi_square_quantile"]


def chi_square_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of the chi-square distribution with ``df`` degrees."""
    if not 0.0 < probability < 1.0:
        raise ValueError("probability must be in (0, 1)")
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    z = NormalDist().inv_cdf(probability)
    h = 2.0 / (9.0 * df)
    return df * max(0.0, 1.0 - h + z * math.sqrt(h)) ** 3
