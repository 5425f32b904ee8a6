"""Draw the negatives to judge: uniform or stratified by mining-rank bucket, and a control sample.

Everything is seeded through an injected ``numpy.random.Generator`` and works on row numbers of a
``NegativeTable``, so a sample is reproducible and cheap to draw from millions of negatives.

Buckets group mining ranks by hardness. The default edges ``1, 3, 10, 30, 100`` give the buckets
1, 2-3, 4-10, 11-30, 31-100 and >100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_BUCKET_EDGES",
    "Allocation",
    "ControlSample",
    "RankBuckets",
    "Sample",
    "SamplingMethod",
    "control_sample",
    "draw_sample",
    "stratified_allocation",
]

DEFAULT_BUCKET_EDGES = (1, 3, 10, 30, 100)
SamplingMethod = Literal["uniform", "stratified"]
Allocation = Literal["proportional", "equal"]


@dataclass(frozen=True)
class RankBuckets:
    """Mining-rank buckets given by their inclusive upper edges; the last bucket is open."""

    edges: tuple[int, ...] = DEFAULT_BUCKET_EDGES

    def __post_init__(self) -> None:
        if not self.edges or any(e < 1 for e in self.edges):
            raise ValueError("bucket edges must be positive ranks, e.g. 1,3,10,30,100")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bucket edges must increase strictly, got {list(self.edges)}")

    @classmethod
    def parse(cls, text: str) -> RankBuckets:
        """Parse ``"1,3,10,30,100"``."""
        try:
            edges = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"expected comma-separated ranks, got {text!r}") from None
        return cls(edges)

    @property
    def labels(self) -> list[str]:
        """Human labels of the buckets: ``1``, ``2-3``, ..., ``>100``."""
        out: list[str] = []
        low = 1
        for edge in self.edges:
            out.append(str(edge) if edge == low else f"{low}-{edge}")
            low = edge + 1
        out.append(f">{self.edges[-1]}")
        return out

    def __len__(self) -> int:
        return len(self.edges) + 1

    def assign(self, ranks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Bucket number of each rank."""
        return np.searchsorted(np.asarray(self.edges), ranks, side="left").astype(np.int64)


@dataclass(frozen=True)
class Sample:
    """Rows drawn from a negative table, in the order they are to be judged."""

    rows: npt.NDArray[np.int64]
    bucket: npt.NDArray[np.int64]
    method: SamplingMethod
    #: Population per bucket: the sampling frame, i.e. the negatives the oracle can judge (every
    #: negative when it judges all). Sizes, weights and finite-population corrections use it, so
    #: the estimates are about the judgeable negatives.
    bucket_population: npt.NDArray[np.int64]
    #: Rows drawn per bucket.
    bucket_drawn: npt.NDArray[np.int64]
    seed: int | None
    allocation: Allocation | None = None
    #: Every negative of the mined set per bucket, judgeable or not (None: the same as
    #: ``bucket_population``); reported beside the rates, never used to weight them.
    bucket_total: npt.NDArray[np.int64] | None = None

    @property
    def population(self) -> int:
        """Number of negatives the sample stands for: the judgeable ones."""
        return int(self.bucket_population.sum())

    @property
    def total(self) -> int:
        """Number of negatives of the whole mined set, judgeable or not."""
        return self.population if self.bucket_total is None else int(self.bucket_total.sum())

    def inclusion_weight(self) -> npt.NDArray[np.float64]:
        """Population rows each sampled row stands for (N_h / n_h, or N / n when uniform)."""
        if self.method == "uniform":
            return np.full(self.rows.shape, self.population / max(len(self.rows), 1))
        drawn = np.maximum(self.bucket_drawn, 1)
        return (self.bucket_population / drawn)[self.bucket].astype(np.float64)


def stratified_allocation(
    population: npt.NDArray[np.int64],
    size: int,
    allocation: Allocation = "proportional",
    min_per_bucket: int = 20,
) -> npt.NDArray[np.int64]:
    """Labels per bucket: proportional (or equal) shares, each at least ``min_per_bucket``.

    Shares are rounded by largest remainder, capped by each bucket's population, and the floor
    keeps small (often the hardest) buckets estimable; floors can push the total above ``size``.
    """
    pop = np.asarray(population, dtype=np.int64)
    live = pop > 0
    if size < 1:
        raise ValueError("the sample size must be positive")
    share = pop / pop.sum() if allocation == "proportional" else live / max(live.sum(), 1)
    raw = share * size
    alloc = np.floor(raw).astype(np.int64)
    remainder = size - int(alloc.sum())
    if remainder > 0:
        order = np.argsort(-(raw - alloc), kind="stable")
        alloc[order[:remainder]] += 1
    alloc = np.maximum(alloc, np.where(live, min_per_bucket, 0))
    alloc = np.minimum(alloc, pop)
    # Every non-empty bucket gets at least one label, so its rate can be estimated.
    return np.where(live & (alloc == 0), 1, alloc).astype(np.int64)


def draw_sample(
    bucket: npt.NDArray[np.int64],
    eligible: npt.NDArray[np.bool_] | None,
    size: int,
    rng: np.random.Generator,
    *,
    num_buckets: int,
    method: SamplingMethod = "uniform",
    allocation: Allocation = "proportional",
    min_per_bucket: int = 20,
    seed: int | None = None,
) -> Sample:
    """Draw ``size`` rows without replacement, uniformly or per bucket, in a random order.

    ``bucket`` is the bucket of every row of the table; ``eligible`` masks rows the oracle can
    judge (None: all). A size at or above the eligible population takes every eligible row.
    The sample's population is the eligible rows (the frame it is drawn from): estimates, their
    finite-population corrections and the sample size for a half-width all refer to them. They
    stand for the whole mined set only as far as the eligible rows (audited queries, labelled
    pairs) are representative of it; ``bucket_total`` keeps the whole table's counts.
    """
    rows_all = np.arange(bucket.shape[0], dtype=np.int64)
    candidates = rows_all if eligible is None else rows_all[eligible]
    total = np.bincount(bucket, minlength=num_buckets).astype(np.int64)
    pop = np.bincount(bucket[candidates], minlength=num_buckets).astype(np.int64)
    if candidates.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        zeros = np.zeros(num_buckets, np.int64)
        return Sample(empty, empty, method, pop, zeros, seed, bucket_total=total)
    if method == "uniform":
        take = min(size, candidates.size)
        rows = rng.choice(candidates, size=take, replace=False)
        chosen_bucket = bucket[rows]
        drawn = np.bincount(chosen_bucket, minlength=num_buckets).astype(np.int64)
        return Sample(
            rows.astype(np.int64), chosen_bucket, method, pop, drawn, seed, bucket_total=total
        )
    alloc = stratified_allocation(pop, size, allocation, min_per_bucket)
    parts: list[npt.NDArray[np.int64]] = []
    for b in range(num_buckets):
        if alloc[b] == 0:
            continue
        in_bucket = candidates[bucket[candidates] == b]
        parts.append(rng.choice(in_bucket, size=int(alloc[b]), replace=False))
    rows = np.concatenate(parts).astype(np.int64)
    rows = rows[rng.permutation(rows.size)]
    return Sample(rows, bucket[rows], method, pop, alloc, seed, allocation, total)


@dataclass(frozen=True)
class ControlSample:
    """Random (query, document) pairs: the baseline false-negative rate of unmined negatives."""

    query_index: npt.NDArray[np.int64]
    doc_position: npt.NDArray[np.int64]


def control_sample(
    positives: Sequence[set[int]],
    num_docs: int,
    size: int,
    rng: np.random.Generator,
    *,
    eligible_queries: npt.NDArray[np.bool_] | None = None,
) -> ControlSample:
    """Draw ``size`` pairs: a query uniformly, then a corpus document that is not its positive."""
    queries = np.arange(len(positives), dtype=np.int64)
    if eligible_queries is not None:
        queries = queries[eligible_queries]
    if size < 1 or queries.size == 0 or num_docs < 1:
        empty = np.zeros(0, dtype=np.int64)
        return ControlSample(empty, empty)
    q = rng.choice(queries, size=size, replace=True)
    d = rng.integers(0, num_docs, size=size)
    for i in range(size):  # redraw the rare hits on a labelled positive
        tries = 0
        while int(d[i]) in positives[int(q[i])] and tries < 100:
            d[i] = rng.integers(0, num_docs)
            tries += 1
    return ControlSample(q.astype(np.int64), d.astype(np.int64))
