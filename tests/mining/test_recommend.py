"""The recommended filter: the smallest one that brings the projected rate under target."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.estimate import estimate_rates
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.recommend import FilterSpec, recommend
from recallwatch.mining.sampling import RankBuckets, draw_sample
from recallwatch.synthetic.mined import simulate_mined_set


def _ranks_only(table: NegativeTable) -> NegativeTable:
    nan = np.full(len(table), np.nan)
    return NegativeTable(table.query_index, table.negative_index, table.rank, nan, nan)


def _issue_census_case() -> tuple[NegativeTable, np.ndarray]:
    """The issue's case: 300 queries x 30 negatives, 32% FN at rank 1, 18% at 2-3, 9% at 4-10,
    4% at 11-30; true rate 7.2%. Ranks only (a mined set without scores)."""
    sim = simulate_mined_set(
        num_queries=300,
        negatives_per_query=30,
        bucket_rates=(0.32, 0.18, 0.09, 0.04, 0.04, 0.04),
        seed=28,
    )
    return _ranks_only(sim.mined.table()), sim.is_false_negative


def test_census_recommends_the_least_dropping_filter_under_target() -> None:
    table, fn = _issue_census_case()
    assert fn.mean() == pytest.approx(0.072, abs=0.0005)
    true_rate = {r: float(fn[table.rank > r].mean()) for r in range(0, 30)}
    assert true_rate[6] < 0.05 < true_rate[5]  # range_min=6 is the truth's answer
    rec = recommend(table, np.arange(len(table)), fn)
    assert rec.needed and rec.best is not None
    # The old projection (Wilson on the Kish size, no finite-population correction) said
    # range_min=10 here; a census is exact.
    assert rec.best.spec == FilterSpec(range_min=6)
    assert rec.best.dropped_fraction == pytest.approx(0.2)
    projected = rec.best.projected
    assert projected.lower == projected.estimate == projected.upper
    assert projected.estimate == pytest.approx(true_rate[6])


def test_recommendation_picks_the_smallest_filter() -> None:
    # 1000 queries x 20 ranks; ranks 1-2 are 60% false negatives, the rest 2%: skipping rank 1
    # alone leaves 5.05%.
    rng = np.random.default_rng(0)
    ranks = np.tile(np.arange(1, 21), 1000)
    fn = rng.random(ranks.size) < np.where(ranks <= 2, 0.6, 0.02)
    table = NegativeTable(
        np.repeat(np.arange(1000), 20),
        np.tile(np.arange(20), 1000),
        ranks,
        np.full(ranks.size, np.nan),
        np.full(ranks.size, np.nan),
    )
    rows = rng.choice(ranks.size, 1500, replace=False)
    rec = recommend(table, rows, fn[rows])
    assert rec.needed and rec.best is not None
    assert rec.best.spec == FilterSpec(range_min=2)
    assert rec.best.dropped_fraction == pytest.approx(0.1)
    assert rec.best.projected.upper <= 0.05
    assert any("only range_min" in n for n in rec.notes)
    clean = recommend(table, rows, np.zeros(rows.size, dtype=bool))
    assert not clean.needed and clean.best is not None and clean.best.spec.is_noop


@pytest.mark.parametrize("method", ["uniform", "stratified"])
def test_no_filter_projection_is_the_headline(method: str) -> None:
    sim = simulate_mined_set(num_queries=200, negatives_per_query=30, seed=3)
    table, fn = sim.mined.table(), sim.is_false_negative
    buckets = RankBuckets()
    bucket = buckets.assign(table.rank)
    sample = draw_sample(
        bucket,
        None,
        500,
        np.random.default_rng(1),
        num_buckets=len(buckets),
        method=method,  # type: ignore[arg-type]
    )
    outcomes = fn[sample.rows].astype(np.int8)
    headline = estimate_rates(sample, outcomes, buckets.labels).best
    rec = recommend(table, sample.rows, fn[sample.rows], target=0.5)
    assert not rec.needed and rec.best is not None and headline is not None
    assert rec.best.projected.estimate == pytest.approx(headline.estimate, abs=1e-12)
    assert rec.best.projected.lower == pytest.approx(headline.lower, abs=1e-12)
    assert rec.best.projected.upper == pytest.approx(headline.upper, abs=1e-12)


def test_no_qualifying_filter_says_how_many_labels_would_decide_it() -> None:
    table, fn = _issue_census_case()
    rng = np.random.default_rng(4)
    buckets = RankBuckets()
    sample = draw_sample(
        buckets.assign(table.rank), None, 300, rng, num_buckets=len(buckets), method="stratified"
    )
    rec = recommend(table, sample.rows, fn[sample.rows])
    assert rec.needed and rec.best is None and rec.to_decide
    head = rec.notes[0]
    assert "what would decide it" in head and "more judged negatives" in head
    for decide in rec.to_decide:
        assert decide.more_labels > 0
        assert sum(decide.by_bucket.values()) == decide.more_labels
        assert set(decide.by_bucket) <= set(buckets.labels)
        assert decide.option.projected.estimate <= 0.05 < decide.option.projected.upper
    as_json = rec.as_dict()["to_decide"][0]
    assert as_json["more_labels"] == rec.to_decide[0].more_labels
    # Judging that many more (at the same rates) brings the upper bound to the target: the
    # census of the candidate's kept negatives always does, so the answer is finite.
    assert rec.to_decide[0].more_labels <= rec.to_decide[0].option.kept_population


def test_census_with_nothing_under_target_says_labels_cannot_help() -> None:
    table, fn = _issue_census_case()
    rec = recommend(table, np.arange(len(table)), fn, target=0.01)
    assert rec.best is None and not rec.to_decide
    assert "every negative is judged" in rec.notes[0]
