"""Projected false-negative rates of many candidate filters at once (vectorised over candidates).

A filter keeps a known subset of the negatives (ranks and scores of every negative are known), so
what it keeps of each mining-rank bucket is known exactly, and the judged sample negatives it
keeps in a bucket are a simple random sample of the bucket's negatives it keeps (for a uniform
and for a stratified sample alike). Its projected rate is therefore the headline estimator of
``estimate.estimate_rates`` applied to what it keeps: per bucket the judged rate, weighted by
the bucket's share of the *kept* judgeable population, with each bucket's finite-population
correction taken over that kept population (``stats.stratified_intervals``). A bucket it keeps
negatives of but no judged one is merged into its deeper neighbour, as the headline does. When
every kept negative is judged (a census), the projection is exact: a zero-width interval.

Everything here is pure numpy over (candidates x buckets) count arrays; the rows are visited in
column chunks so memory stays bounded for millions of negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recallwatch.mining.margins import implied_absolute_margin, st_relative_keep
from recallwatch.stats import STRATUM_PSEUDO_COUNT, stratified_intervals

__all__ = [
    "CandidateGrid",
    "Projections",
    "bucket_counts",
    "confirmable",
    "confirming_z",
    "labels_to_reach",
    "project",
]

_CHUNK_CELLS = 16_000_000  # candidates x rows per chunk (bytes of the boolean keep matrix)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CandidateGrid:
    """Candidate filters as parallel arrays (NaN: that margin is not used)."""

    range_min: IntArray
    relative_margin: FloatArray
    absolute_margin: FloatArray

    def __len__(self) -> int:
        return int(self.range_min.shape[0])

    @classmethod
    def of(cls, specs: Sequence[tuple[int, float | None, float | None]]) -> CandidateGrid:
        """From ``(range_min, relative_margin, absolute_margin)`` triples."""
        return cls(
            np.array([s[0] for s in specs], dtype=np.int64),
            np.array([np.nan if s[1] is None else s[1] for s in specs], dtype=np.float64),
            np.array([np.nan if s[2] is None else s[2] for s in specs], dtype=np.float64),
        )

    def keep(
        self, rank: IntArray, score: FloatArray, positive: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """(candidates x rows) mask of what each candidate keeps (``FilterSpec.keep``'s rules)."""
        kept = rank[None, :] > self.range_min[:, None]
        rel = ~np.isnan(self.relative_margin)
        if rel.any():
            margins, inverse = np.unique(self.relative_margin[rel], return_inverse=True)
            by_margin = np.stack([st_relative_keep(score, positive, float(m)) for m in margins])
            kept[rel] &= by_margin[inverse.reshape(-1)]
        absolute = ~np.isnan(self.absolute_margin)
        if absolute.any():
            gap = implied_absolute_margin(score, positive)
            kept[absolute] &= gap[None, :] >= self.absolute_margin[absolute][:, None]
        return np.asarray(kept, dtype=bool)


def bucket_counts(
    grid: CandidateGrid,
    rank: IntArray,
    score: FloatArray,
    positive: FloatArray,
    bucket: IntArray,
    num_buckets: int,
) -> IntArray:
    """(candidates x buckets): how many of the given rows each candidate keeps, per bucket."""
    out = np.zeros((len(grid), num_buckets), dtype=np.int64)
    if rank.size == 0 or len(grid) == 0:
        return out
    order = np.argsort(bucket, kind="stable")
    rank, score, positive, bucket = rank[order], score[order], positive[order], bucket[order]
    edges = np.searchsorted(bucket, np.arange(num_buckets + 1), side="left")
    chunk = max(1, _CHUNK_CELLS // max(len(grid), 1))
    for b in range(num_buckets):
        for lo in range(int(edges[b]), int(edges[b + 1]), chunk):
            hi = min(lo + chunk, int(edges[b + 1]))
            kept = grid.keep(rank[lo:hi], score[lo:hi], positive[lo:hi])
            out[:, b] += np.count_nonzero(kept, axis=1)
    return out


def merge_empty_strata(
    x: IntArray | FloatArray, n: IntArray, size: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Merge each stratum with a population but no judged negative into its deeper neighbour.

    Row-wise over (candidates x buckets); trailing empty strata go to the last stratum that has
    judged negatives, as ``estimate.merge_empty_buckets`` does for the headline. Rows without any
    judged negative are left as they are (the caller skips them).
    """
    xs, ns, sizes = x.astype(np.float64), n.astype(np.float64), size.astype(np.float64)
    carry = np.zeros(xs.shape[0])
    for b in range(xs.shape[1]):
        empty = (ns[:, b] == 0) & (sizes[:, b] > 0)
        carry = carry + np.where(empty, sizes[:, b], 0.0)
        sizes[:, b] = np.where(empty, 0.0, sizes[:, b])
        judged = ns[:, b] > 0
        sizes[:, b] += np.where(judged, carry, 0.0)
        carry = np.where(judged, 0.0, carry)
    left = carry > 0
    if left.any():
        has = ns > 0
        last = xs.shape[1] - 1 - np.argmax(has[:, ::-1], axis=1)
        rows = np.flatnonzero(left & has.any(axis=1))
        sizes[rows, last[rows]] += carry[rows]
    return xs, ns, sizes


@dataclass(frozen=True)
class Projections:
    """The projected rate of what each candidate keeps, with its interval."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    #: Judged sample negatives each candidate keeps.
    kept_judged: IntArray
    #: Judgeable negatives each candidate keeps (the population of its projection).
    kept_population: IntArray


def project(x: IntArray, n: IntArray, size: IntArray, *, confidence: float = 0.95) -> Projections:
    """Projections from (candidates x buckets) kept false negatives, judged and population."""
    mx, mn, msize = merge_empty_strata(x, n, size)
    judged = n.sum(axis=1)
    ok = (judged > 0) & (size.sum(axis=1) > 0)
    est = np.full(judged.shape, np.nan)
    lower, upper = est.copy(), est.copy()
    if ok.any():
        e, lo, hi, _, _ = stratified_intervals(
            mx[ok], mn[ok], msize[ok], confidence=confidence, pseudo_count=STRATUM_PSEUDO_COUNT
        )
        est[ok], lower[ok], upper[ok] = e, lo, hi
    return Projections(est, lower, upper, judged.astype(np.int64), size.sum(axis=1))


def confirmable(
    n: IntArray, size: IntArray, rate: float, target: float, *, confidence: float = 0.95
) -> npt.NDArray[np.bool_]:
    """Per candidate: would its upper bound meet ``target`` were its judged rate ``rate``?

    Uses only what the sample design fixes (judged negatives and population per bucket), never
    a verdict, so choosing candidates by it keeps a test of their labels valid. A candidate
    that keeps no judged negative is not confirmable; one whose kept negatives are all judged
    always is (its projection is exact).
    """
    mx, mn, msize = merge_empty_strata(n.astype(np.float64) * rate, n, size)
    ok = (n.sum(axis=1) > 0) & (size.sum(axis=1) > 0)
    out = np.zeros(ok.shape, dtype=bool)
    if ok.any():
        _, _, upper, variance, _ = stratified_intervals(
            mx[ok], mn[ok], msize[ok], confidence=confidence, pseudo_count=STRATUM_PSEUDO_COUNT
        )
        out[ok] = (upper <= target + 1e-12) | (variance <= 0.0)
    return out


def confirming_z(x: IntArray, n: IntArray, size: IntArray, target: float) -> FloatArray:
    """Per candidate: the largest normal quantile ``z`` whose upper bound still meets ``target``.

    The projection's upper bound is a Wilson bound on the effective sample size ``m``: the
    largest rate ``t`` with ``(t - p)^2 <= z^2 t (1 - t) / m``. It is at most ``target`` exactly
    when ``z <= (target - p) * sqrt(m / (target (1 - target)))``, so a candidate passes a test
    at confidence ``c`` when this value is at least ``z_value(c)``. An exact projection (every
    kept negative judged) that meets the target gives infinity; an estimate above the target,
    or no judged negative, minus infinity.
    """
    mx, mn, msize = merge_empty_strata(x, n, size)
    judged = n.sum(axis=1)
    ok = (judged > 0) & (size.sum(axis=1) > 0)
    out = np.full(judged.shape, -np.inf)
    if ok.any():
        p, _, _, variance, m = stratified_intervals(
            mx[ok], mn[ok], msize[ok], pseudo_count=STRATUM_PSEUDO_COUNT
        )
        meets = p <= target + 1e-12
        with np.errstate(invalid="ignore"):
            z = (target - p) * np.sqrt(m / (target * (1.0 - target)))
        z = np.where(variance <= 0.0, np.inf, np.maximum(z, 0.0))
        out[ok] = np.where(meets, z, -np.inf)
    return out


def labels_to_reach(
    x: IntArray,
    n: IntArray,
    size: IntArray,
    target: float,
    *,
    confidence: float = 0.95,
) -> FloatArray:
    """(candidates x buckets) judged negatives needed for the upper bound to reach ``target``.

    Each candidate's judged sample is scaled up by one factor in every bucket it keeps (capped at
    the bucket's kept population) at its current per-bucket rates, and the smallest factor whose
    projected upper bound is at most ``target`` is found by bisection. Rows whose current
    estimate is above the target cannot get there (NaN); at a census every row is exact already.
    """
    xs, ns, sizes = merge_empty_strata(x, n, size)
    out = np.full(xs.shape, np.nan)
    current = project(x, n, size, confidence=confidence)
    rows = np.flatnonzero(np.isfinite(current.estimate) & (current.estimate <= target))
    if rows.size == 0:
        return out
    ns_r, sizes_r = ns[rows], sizes[rows]
    judged = ns_r > 0
    rate_r = np.where(judged, xs[rows] / np.where(judged, ns_r, 1.0), 0.0)

    def scaled_at(factor: FloatArray) -> FloatArray:
        grown = np.minimum(sizes_r, np.ceil(ns_r * factor[:, None] - 1e-9))
        return np.where(judged, np.maximum(grown, ns_r), 0.0)

    def reached(factor: FloatArray) -> npt.NDArray[np.bool_]:
        scaled = scaled_at(factor)
        _, _, up, _, _ = stratified_intervals(
            rate_r * scaled,
            scaled,
            sizes_r,
            confidence=confidence,
            pseudo_count=STRATUM_PSEUDO_COUNT,
        )
        return np.asarray(up <= target, dtype=bool)

    # At the largest factor every kept bucket is fully judged: exact, so the target is reached.
    lo = np.ones(rows.size)
    hi = np.maximum(np.where(judged, sizes_r / np.where(judged, ns_r, 1.0), 1.0).max(axis=1), 1.0)
    hi = np.where(reached(lo), lo, hi)
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        ok = reached(mid)
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    out[rows] = scaled_at(hi) - ns_r
    return out
