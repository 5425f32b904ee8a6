"""Rank buckets and the samples drawn from them: uniform, stratified, control."""

from __future__ import annotations

import numpy as np
import pytest

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
