"""Rate estimates from judged samples, and the amplification over random negatives."""

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
from recallwatch.mining.sampling import (
    RankBuckets,
    draw_sample,
)


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


def test_buckets_report_judgeable_and_all_negatives() -> None:
    bucket = RankBuckets().assign(np.tile(np.arange(1, 51), 100))
    eligible = np.zeros(bucket.size, dtype=bool)
    eligible[:1000] = True
    sample = draw_sample(bucket, eligible, 200, np.random.default_rng(0), num_buckets=6)
    outcomes = np.full(sample.rows.size, NOT_FN, dtype=np.int8)
    est = estimate_rates(sample, outcomes, RankBuckets().labels)
    first = est.as_dict()["buckets"][0]
    assert first["population"] == 20 and first["negatives"] == 100
    assert est.as_dict()["population"] == 1000 and est.as_dict()["negatives"] == 5000


@pytest.mark.parametrize("method", ["uniform", "stratified"])
def test_amplification_is_the_ratio_of_the_printed_rates(method: str) -> None:
    buckets = RankBuckets()
    bucket = buckets.assign(np.tile(np.arange(1, 151), 100))
    rng = np.random.default_rng(5)
    truth = rng.random(bucket.size) < np.array([0.4, 0.2, 0.1, 0.05, 0.03, 0.02])[bucket]
    sample = draw_sample(
        bucket,
        None,
        400,
        rng,
        num_buckets=len(buckets),
        method=method,  # type: ignore[arg-type]
    )
    rates = estimate_rates(sample, truth[sample.rows].astype(np.int8), buckets.labels)
    control = np.where(np.arange(500) < 8, FN, NOT_FN).astype(np.int8)
    amp = estimate_amplification(rates, control)
    assert amp.mined is rates.best and amp.random is not None and amp.ratio is not None
    assert amp.ratio.estimate == amp.mined.estimate / amp.random.estimate
    assert amp.ratio.lower <= amp.ratio.estimate <= amp.ratio.upper
    if method == "uniform":  # post-stratified headline differs from the raw overall rate
        assert rates.overall is not None
        assert rates.best is rates.stratified
        assert amp.mined.estimate != pytest.approx(rates.overall.estimate, abs=1e-9)
