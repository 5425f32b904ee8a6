"""Score margins between a negative and its query's positive, in sentence-transformers' terms.

``mine_hard_negatives`` compares each candidate with the *lowest* score among the query's
positives and skips it when

- ``absolute_margin`` a:  ``score + a > positive``
- ``relative_margin`` m:  ``score > positive - |positive| * m``  (0.05 keeps only negatives at
  least 5% of the positive's magnitude below it; NV-Retriever's TopK-PercPos 95%).

The same quantities drive the model oracle's rule, the recommendation and the soft weights.
All functions are vectorised over numpy arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "implied_absolute_margin",
    "implied_relative_margin",
    "relative_threshold",
    "soft_weight",
]

FloatArray = npt.NDArray[np.float64]


def relative_threshold(positive: FloatArray | float, margin: float) -> FloatArray:
    """Score above which a candidate is within ``margin`` of the positive (sign-safe)."""
    pos = np.asarray(positive, dtype=np.float64)
    return np.asarray(pos - np.abs(pos) * margin, dtype=np.float64)


def implied_relative_margin(score: FloatArray, positive: FloatArray) -> FloatArray:
    """Largest ``relative_margin`` that still keeps each negative (kept iff margin <= this)."""
    s = np.asarray(score, dtype=np.float64)
    p = np.asarray(positive, dtype=np.float64)
    mag = np.abs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (p - s) / mag
    # A zero positive: the threshold is 0 whatever the margin.
    return np.where(mag > 0, out, np.where(s <= p, np.inf, -np.inf))


def implied_absolute_margin(score: FloatArray, positive: FloatArray) -> FloatArray:
    """Largest ``absolute_margin`` that still keeps each negative (kept iff margin <= this)."""
    return np.asarray(positive, dtype=np.float64) - np.asarray(score, dtype=np.float64)


def soft_weight(score: FloatArray, positive: FloatArray, scale: float = 0.1) -> FloatArray:
    """Weight in [0, 1]: 0 at or above the positive's score, 1 at ``scale`` relative margin below.

    Linear in between, i.e. ``clip((positive - score) / (|positive| * scale), 0, 1)``: a negative
    the judge scores like a positive barely counts, a clearly separated one counts fully.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    m = implied_relative_margin(score, positive)
    return np.asarray(np.clip(np.nan_to_num(m / scale, nan=1.0), 0.0, 1.0), dtype=np.float64)
