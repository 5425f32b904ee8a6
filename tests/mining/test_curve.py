"""The filter curve: its points are recommend's projections; percentile thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.curve import (
    FAMILIES,
    Percentile,
    filter_curve,
    parse_threshold,
    resolve_threshold,
)
from recallwatch.mining.recommend import (
    FilterOption,
    FilterSpec,
    candidate_filters,
    evaluate_filters,
    recommend,
)
from recallwatch.mining.sampling import RankBuckets, draw_sample
from recallwatch.synthetic.mined import simulate_mined_set


def _same(o: FilterOption) -> dict:
    return o.as_dict()  # strict JSON: NaN projections (nothing kept) become null


@pytest.fixture(scope="module")
def judged() -> tuple:
    sim = simulate_mined_set(num_queries=300, negatives_per_query=20, num_docs=4000, seed=5)
    table = sim.mined.table()
    assert table.has_scores
    rb = RankBuckets()
    rng = np.random.default_rng(0)
    sample = draw_sample(rb.assign(table.rank), None, 600, rng, num_buckets=len(rb))
    return table, sample.rows, sim.is_false_negative[sample.rows]


def test_curve_points_equal_recommends_projections(judged: tuple) -> None:
    table, rows, fn = judged
    rec = recommend(table, rows, fn, target=0.05)
    curve = filter_curve(table, rows, fn, recommendation=rec)
    assert set(curve.families) == set(FAMILIES)
    # Every option recommend reports is a point of its family's curve, with the same numbers.
    for option in rec.options:
        if option.family not in curve.families:
            continue
        match = [p for p in curve.families[option.family] if p.option.spec == option.spec]
        assert len(match) == 1
        assert _same(match[0].option) == _same(option)
    # And every curve point equals recommend's evaluation of the same filter, one by one.
    for family, points in curve.families.items():
        specs = [(family, p.option.spec) for p in points[::7]]
        again = evaluate_filters(table, rows, fn, specs)
        assert [_same(p.option) for p in points[::7]] == [_same(o) for o in again]
    if rec.best is not None and rec.best.family in FAMILIES:
        assert curve.recommended is not None and curve.recommended[0] == rec.best.family


def test_curve_is_the_recommendation_grid_without_combinations(judged: tuple) -> None:
    table, rows, fn = judged
    curve = filter_curve(table, rows, fn)
    grid = [s for f, s in candidate_filters(table) if f in FAMILIES]
    assert sum(len(p) for p in curve.families.values()) == len(grid)
    dropped = [p.option.dropped_fraction for p in curve.families["range_min"]]
    assert dropped == sorted(dropped)  # a larger range_min drops more


def test_percentile_thresholds() -> None:
    assert parse_threshold("relative_margin", "p95") == Percentile(95.0)
    assert parse_threshold("absolute_margin", "0.1") == 0.1
    with pytest.raises(ValueError, match=r"relative_margin: expected a number or a percentile"):
        parse_threshold("relative_margin", "95%")
    with pytest.raises(ValueError, match="between p0 and p100"):
        parse_threshold("absolute_margin", "p120")


def test_a_percentile_drops_that_share_of_any_models_negatives(judged: tuple) -> None:
    table, _, _ = judged
    for scale in (1.0, 0.2):  # another model: the same ranking, scores squeezed 5x
        squeezed = type(table)(
            table.query_index,
            table.negative_index,
            table.rank,
            table.score * scale,
            table.positive_score * scale,
        )
        a = resolve_threshold(squeezed, "absolute_margin", Percentile(30))
        kept = FilterSpec(absolute_margin=a).keep(
            squeezed.rank, squeezed.score, squeezed.positive_score
        )
        assert 1 - kept.mean() == pytest.approx(0.30, abs=0.01)
