"""Sampling, estimates and the recommendation, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.estimate import (
    FN,
    MISSING,
    NOT_FN,
    UNSURE,
    estimate_amplification,
    estimate_rates,
)
from recallwatch.mining.margins import implied_relative_margin, soft_weight
from recallwatch.mining.recommend import FilterSpec, recommend
from recallwatch.mining.sampling import (
    RankBuckets,
    control_sample,
    draw_sample,
    stratified_allocation,
)


def test_buckets_labels_and_assignment() -> None:
    b = RankBuckets()
    assert b.labels == ["1", "2-3", "4-10", "11-30", "31-100", ">100"]
    ranks = np.array([1, 2, 3, 4, 10, 11, 30, 31, 100, 101, 5000])
    assert list(b.assign(ranks)) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert RankBuckets.parse("2,5").labels == ["1-2", "3-5", ">5"]
    for bad in ("3,1", "0,4", "a"):
        with pytest.raises(ValueError):
            RankBuckets.parse(bad)


def test_uniform_sample_is_seeded_and_respects_eligibility() -> None:
    bucket = RankBuckets().assign(np.tile(np.arange(1, 51), 100))
    eligible = np.zeros(bucket.size, dtype=bool)
    eligible[:2500] = True

    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return draw_sample(bucket, eligible, 300, rng, num_buckets=6).rows

    assert np.array_equal(draw(1), draw(1)) and not np.array_equal(draw(1), draw(2))
    rows = draw(1)
    assert rows.size == 300 and len(set(rows.tolist())) == 300 and (rows < 2500).all()
    everything = draw_sample(bucket, eligible, 10**6, np.random.default_rng(0), num_buckets=6)
    assert everything.rows.size == 2500
    # The sample stands for the judgeable rows it was drawn from; the whole table is kept aside.
    assert everything.population == 2500 and everything.total == 5000


def test_stratified_allocation_floors_and_caps() -> None:
    pop = np.array([10, 200, 5000, 0])
    alloc = stratified_allocation(pop, 300, "proportional", min_per_bucket=20)
    assert list(alloc) == [10, 20, 288, 0]  # capped at 10, floored at 20, rest proportional
    assert list(stratified_allocation(pop, 90, "equal", 0)) == [10, 30, 30, 0]
    bucket = np.repeat(np.arange(4), pop)
    s = draw_sample(bucket, None, 300, np.random.default_rng(0), num_buckets=4, method="stratified")
    assert list(np.bincount(s.bucket, minlength=4)) == list(alloc)
    w = s.inclusion_weight()
    assert w[s.bucket == 2][0] == pytest.approx(5000 / 288)


def test_control_sample_avoids_positives() -> None:
    positives = [{0, 1, 2}, {3}]
    c = control_sample(positives, 5, 500, np.random.default_rng(0))
    pairs = set(zip(c.query_index.tolist(), c.doc_position.tolist(), strict=True))
    assert not pairs & {(0, 0), (0, 1), (0, 2), (1, 3)}
    only_second = control_sample(
        positives, 5, 50, np.random.default_rng(0), eligible_queries=np.array([False, True])
    )
    assert set(only_second.query_index.tolist()) == {1}


def _sample(bucket: np.ndarray, rows: np.ndarray, population: list[int]):  # type: ignore[no-untyped-def]
    from recallwatch.mining.sampling import Sample

    pop = np.asarray(population, dtype=np.int64)
    drawn = np.bincount(bucket, minlength=pop.size).astype(np.int64)
    return Sample(rows, bucket, "uniform", pop, drawn, 0)


def test_estimates_count_unsure_and_missing_separately() -> None:
    bucket = np.array([0, 0, 1, 1, 1, 1])
    outcomes = np.array([FN, UNSURE, FN, NOT_FN, NOT_FN, MISSING], dtype=np.int8)
    est = estimate_rates(_sample(bucket, np.arange(6), [100, 900]), outcomes, ["1", ">1"])
    assert (est.judged, est.false_negatives, est.unsure, est.unjudged) == (4, 2, 1, 1)
    assert est.overall is not None and est.overall.estimate == pytest.approx(0.5)
    assert est.buckets[0].rate is not None and est.buckets[0].rate.estimate == 1.0
    # Post-stratified: 0.1 * 1/1 + 0.9 * 1/3
    assert est.stratified is not None and est.stratified.estimate == pytest.approx(0.1 + 0.3)
    assert any("unsure" in n for n in est.notes)


def test_bucket_without_judgements_is_merged() -> None:
    bucket = np.array([1, 1, 2])
    outcomes = np.array([FN, NOT_FN, NOT_FN], dtype=np.int8)
    est = estimate_rates(_sample(bucket, np.arange(3), [10, 100, 100]), outcomes, ["a", "b", "c"])
    assert any("bucket a has no judged negative: merged with b" in n for n in est.notes)
    assert est.stratified is not None


def test_amplification() -> None:
    bucket = np.zeros(400, dtype=np.int64)
    outcomes = np.where(np.arange(400) < 40, FN, NOT_FN).astype(np.int8)
    est = estimate_rates(_sample(bucket, np.arange(400), [10**6]), outcomes, ["all"])
    control = np.where(np.arange(500) < 10, FN, NOT_FN).astype(np.int8)
    amp = estimate_amplification(est, control)
    assert amp.ratio is not None and amp.ratio.estimate == pytest.approx(0.10 / 0.02)
    assert amp.ratio.lower < 5 < amp.ratio.upper
    none = estimate_amplification(est, np.full(10, MISSING, dtype=np.int8))
    assert none.ratio is None and none.note == "no judged control negative"


def test_margins_follow_sentence_transformers() -> None:
    # relative_margin 0.05 keeps a negative iff score <= positive - |positive| * 0.05
    m = implied_relative_margin(np.array([0.90, 0.96, -0.5]), np.array([1.0, 1.0, -0.4]))
    assert m[0] == pytest.approx(0.10) and m[1] == pytest.approx(0.04)
    assert m[2] == pytest.approx(0.25)  # sign-safe for negative positives
    w = soft_weight(np.array([1.0, 0.95, 0.5]), np.array([1.0, 1.0, 1.0]), scale=0.1)
    assert list(np.round(w, 6)) == [0.0, 0.5, 1.0]


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
