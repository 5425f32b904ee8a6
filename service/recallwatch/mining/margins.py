"""Score margins between a negative and its query's positive, in sentence-transformers' terms.

``mine_hard_negatives`` (sentence_transformers/util/hard_negatives.py) compares each candidate
with the *lowest* score among the query's positives and skips it when

- ``absolute_margin`` a:  ``score + a > positive``
- ``relative_margin`` m:  ``score > positive * (1 - m)``  (0.05 keeps only negatives at most 95%
  as similar as the positive; NV-Retriever's TopK-PercPos 95%).

The filters (``recallwatch filter``, the recommendation) use exactly these rules
(``st_relative_keep``, ``implied_absolute_margin``), so a recommended ``relative_margin`` does in
``mine_hard_negatives`` what it was projected to do, for positive and negative scores alike. For a
negative positive score, ``positive * (1 - m)`` lies *above* the positive: sentence-transformers
then keeps negatives that score higher than the positive, and a larger margin keeps more.

The model oracle's rule and the soft weights are recallwatch's own and are sign-safe instead
(``relative_threshold``: ``positive - |positive| * m``, always below the positive), so that a judge
with raw logits (a CrossEncoder, often negative) calls a negative scoring above the positive a
false negative. For a positive score the two agree: ``positive - |positive| * m = (1 - m) *
positive``. All functions are vectorised over numpy arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "implied_absolute_margin",
    "implied_relative_margin",
    "relative_threshold",
    "soft_weight",
    "st_relative_keep",
]

FloatArray = npt.NDArray[np.float64]


def relative_threshold(positive: FloatArray | float, margin: float) -> FloatArray:
    """The judge's threshold ``positive - |positive| * margin`` (sign-safe; see the module)."""
    pos = np.asarray(positive, dtype=np.float64)
    return np.asarray(pos - np.abs(pos) * margin, dtype=np.float64)


def st_relative_keep(
    score: FloatArray, positive: FloatArray, margin: float
) -> npt.NDArray[np.bool_]:
    """Whether ``mine_hard_negatives(relative_margin=margin)`` keeps each negative.

    Exactly sentence-transformers' rule: skipped iff ``score > positive * (1 - margin)``. Unknown
    (NaN) scores are not kept.
    """
    s = np.asarray(score, dtype=np.float64)
    p = np.asarray(positive, dtype=np.float64)
    return np.asarray(s <= p * (1.0 - margin), dtype=bool)


def implied_relative_margin(score: FloatArray, positive: FloatArray) -> FloatArray:
    """Sign-safe relative margin below the positive, ``(positive - score) / |positive|``.

    For a positive score it is the largest ``relative_margin`` sentence-transformers keeps the
    negative at (kept iff margin <= this); the soft weights use it for any sign.
    """
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
