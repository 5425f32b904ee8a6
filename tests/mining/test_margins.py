"""Score margins, exactly as sentence-transformers' ``mine_hard_negatives`` applies them."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.filtering import confidence_filter
from recallwatch.mining.margins import implied_relative_margin, soft_weight, st_relative_keep
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.recommend import FilterSpec


def test_margins_follow_sentence_transformers() -> None:
    # relative_margin 0.05 keeps a negative iff score <= positive - |positive| * 0.05
    m = implied_relative_margin(np.array([0.90, 0.96, -0.5]), np.array([1.0, 1.0, -0.4]))
    assert m[0] == pytest.approx(0.10) and m[1] == pytest.approx(0.04)
    assert m[2] == pytest.approx(0.25)  # sign-safe for negative positives
    w = soft_weight(np.array([1.0, 0.95, 0.5]), np.array([1.0, 1.0, 1.0]), scale=0.1)
    assert list(np.round(w, 6)) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("score", "positive", "margin", "kept"),
    [
        (0.90, 1.0, 0.05, True),  # 0.90 <= 0.95
        (0.96, 1.0, 0.05, False),
        (0.95, 1.0, 0.05, True),  # equal: sentence-transformers skips only score > threshold
        # Negative positive score: threshold (1 - m) * p lies above p.
        (-1.95, -2.0, 0.05, True),  # -1.95 <= -1.9
        (-1.85, -2.0, 0.05, False),
        (-2.05, -2.0, 0.05, True),
        (0.10, 0.0, 0.5, False),  # a zero positive: threshold 0
        (-0.10, 0.0, 0.5, True),
    ],
)
def test_relative_margin_matches_sentence_transformers(
    score: float, positive: float, margin: float, kept: bool
) -> None:
    st_skips = score > positive * (1 - margin)  # hard_negatives.py, verbatim rule
    assert kept is (not st_skips)
    s, p = np.array([score]), np.array([positive])
    assert bool(st_relative_keep(s, p, margin)[0]) is kept
    spec = FilterSpec(relative_margin=margin)
    assert bool(spec.keep(np.array([5]), s, p)[0]) is kept
    table = NegativeTable(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([5]), s, p.astype(np.float64)
    )
    assert bool(confidence_filter(table, spec).keep[0]) is kept
