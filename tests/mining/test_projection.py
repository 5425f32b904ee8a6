"""Projections of many candidate filters at once: the same masks, merges and estimates."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.estimate import merge_empty_buckets
from recallwatch.mining.projection import (
    CandidateGrid,
    bucket_counts,
    confirmable,
    confirming_z,
    labels_to_reach,
    merge_empty_strata,
    project,
)
from recallwatch.mining.recommend import FilterSpec
from recallwatch.stats import stratified_interval, z_value


def test_grid_keeps_what_each_filter_spec_keeps() -> None:
    rng = np.random.default_rng(0)
    rank = rng.integers(1, 40, 500)
    positive = rng.uniform(-2, 2, 500)
    score = positive - rng.normal(0.1, 0.3, 500)
    specs = [FilterSpec(), FilterSpec(3), FilterSpec(relative_margin=0.05)]
    specs += [FilterSpec(absolute_margin=0.1), FilterSpec(5, 0.2), FilterSpec(0, None, 0.0)]
    grid = CandidateGrid.of([(s.range_min, s.relative_margin, s.absolute_margin) for s in specs])
    kept = grid.keep(rank, score, positive)
    for i, spec in enumerate(specs):
        assert (kept[i] == spec.keep(rank, score, positive)).all()
    bucket = np.minimum(rank // 10, 3)
    counts = bucket_counts(grid, rank, score, positive, bucket, 4)
    for i in range(len(specs)):
        assert list(counts[i]) == [int((kept[i] & (bucket == b)).sum()) for b in range(4)]


def test_merging_empty_strata_matches_the_headline() -> None:
    cases = [
        ([1, 0, 3, 0], [5, 0, 20, 0], [10, 7, 40, 9]),
        ([0, 0, 2], [0, 0, 10], [4, 5, 30]),
        ([1, 0, 0], [10, 0, 0], [20, 3, 0]),
    ]
    for x, n, size in cases:
        mx, mn, msize, _ = merge_empty_buckets(
            np.array(x), np.array(n), np.array(size), [str(i) for i in range(len(x))]
        )
        vx, vn, vsize = merge_empty_strata(np.array([x]), np.array([n]), np.array([size]))
        live = vn[0] > 0
        assert list(vx[0][live]) == list(mx) and list(vn[0][live]) == list(mn)
        assert list(vsize[0][live]) == list(msize) and vsize[0].sum() == sum(size)
        got = project(np.array([x]), np.array([n]), np.array([size]))
        want = stratified_interval(mx, mn, msize).interval
        assert got.estimate[0] == pytest.approx(want.estimate)
        assert got.upper[0] == pytest.approx(want.upper)


def test_labels_to_reach_bring_the_upper_bound_to_the_target() -> None:
    x, n, size = np.array([[2, 6]]), np.array([[60, 200]]), np.array([[1000, 5000]])
    more = labels_to_reach(x, n, size, 0.05)
    assert np.isfinite(more).all() and more.sum() > 0
    after = n + more.astype(np.int64)
    rate = x / n
    reached = project(np.rint(rate * after).astype(np.int64), after, size)
    assert reached.upper[0] <= 0.05 + 0.002  # rounding the counts back to integers
    fewer = n + np.floor(more * 0.8).astype(np.int64)
    assert project(np.rint(rate * fewer).astype(np.int64), fewer, size).upper[0] > 0.05
    # An estimate above the target: no number of labels confirms it.
    assert np.isnan(
        labels_to_reach(np.array([[20]]), np.array([[100]]), np.array([[900]]), 0.05)
    ).all()


def test_confirming_z_is_the_level_where_the_upper_bound_meets_the_target() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(5, 200, (400, 4))
    size = n + rng.integers(0, 2000, (400, 4))
    x = (rng.random((400, 4)) * 0.1 * n).astype(np.int64)
    z = confirming_z(x, n, size, 0.05)
    assert np.isfinite(z).any() and np.isneginf(z).any()
    for confidence in (0.5, 0.9, 0.95, 0.99, 0.999):
        meets = project(x, n, size, confidence=confidence).upper <= 0.05 + 1e-12
        assert (meets == (z >= z_value(confidence) - 1e-9)).all()
    # A census meeting the target is confirmed at any level; one above it never is.
    exact = confirming_z(
        np.array([[1], [9]]), np.array([[100], [100]]), np.array([[100], [100]]), 0.05
    )
    assert list(exact) == [np.inf, -np.inf]


def test_confirmable_reads_the_design_only() -> None:
    n, size = np.array([[15], [400], [0], [300]]), np.array([[300], [6000], [50], [300]])
    # 15 judged of 300 cannot confirm 2.5% at a 5% target; 400 of 6,000 can; a census always.
    assert list(confirmable(n, size, 0.025, 0.05)) == [False, True, False, True]
