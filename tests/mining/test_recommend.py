"""The recommended filter: the smallest one that brings the projected rate under target."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.recommend import FilterSpec, recommend


def test_recommendation_picks_the_smallest_filter() -> None:
    # 1000 queries x 20 ranks; ranks 1-2 are 60% false negatives, the rest 2%: skipping rank 1
    # alone leaves 5.05%.
    rng = np.random.default_rng(0)
    ranks = np.tile(np.arange(1, 21), 1000)
    fn = rng.random(ranks.size) < np.where(ranks <= 2, 0.6, 0.02)
    from recallwatch.mining.mined import NegativeTable

    table = NegativeTable(
        np.repeat(np.arange(1000), 20),
        np.tile(np.arange(20), 1000),
        ranks,
        np.full(ranks.size, np.nan),
        np.full(ranks.size, np.nan),
    )
    rows = rng.choice(ranks.size, 1500, replace=False)
    rec = recommend(table, rows, fn[rows], np.full(rows.size, ranks.size / rows.size))
    assert rec.needed and rec.best is not None
    assert rec.best.spec == FilterSpec(range_min=2)
    assert rec.best.dropped_fraction == pytest.approx(0.1)
    assert rec.best.projected.upper <= 0.05
    assert any("only range_min" in n for n in rec.notes)
    clean = recommend(table, rows, np.zeros(rows.size, dtype=bool), np.ones(rows.size))
    assert not clean.needed and clean.best is not None and clean.best.spec.is_noop
