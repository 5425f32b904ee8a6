"""Prescribe a re-mining: the ``mine()`` arguments whose mined set meets the FN-rate target.

A filter of the existing mined set cannot help when every mined negative is the hardest one
(``num_negatives=1``: every negative has rank 1). A re-mining can: it picks *other* candidates.
``mine()`` records the candidate pool of every query (``pool.jsonl`` beside the mined set: the
candidates up to a depth, with the miner's ranks and scores), so the set a re-mining with given
``range_min`` / ``relative_margin`` / ``num_negatives`` would produce is known exactly from the
pool: per query, the candidates outside the margin (``RemineSpec.keep``), in rank order, the
first ``range_min`` of them skipped and the next ``num_negatives`` picked (sentence-
transformers' ``sampling_strategy="top"``; like it, the margin applies first and ``range_min``
skips the first candidates it keeps). Only their false-negative rate is unknown.

The audit judges a sample of the pool (stratified by mining-rank bucket; a census when the judge
is free, ``sample_size``); the judged pool candidates a re-mining would pick, per bucket, are a
simple random sample of what it picks in that bucket, so its projected rate is the headline
estimator on what it picks (``projection.project``): exact at a census. Every candidate re-mining
is tested at ``(1 - confidence) / m`` (Bonferroni over the ``m`` candidates whose projection is not
exact), so the chance of prescribing any re-mining whose true rate is over the target stays at
most ``1 - confidence``. Among the confirmed ones the prescription is the one that yields the most
negatives, then the hardest (lowest mean rank): the least change that meets the target.

Everything here is pure numpy; the audit (``audit.run_audit``) wires it to the pool and judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.mining.margins import st_relative_keep
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.projection import project
from recallwatch.mining.sampling import RankBuckets
from recallwatch.stats import Interval

__all__ = [
    "POOL_FILE",
    "RANGE_MIN_GRID",
    "RELATIVE_MARGIN_GRID",
    "Prescription",
    "RemineOption",
    "RemineSpec",
    "prescribe",
    "selected",
]

#: The candidate pool ``mine()`` records beside each mined set (``mine(pool_depth=...)``).
POOL_FILE = "pool.jsonl"
RANGE_MIN_GRID = (0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50)
RELATIVE_MARGIN_GRID: tuple[float | None, ...] = (None, 0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class RemineSpec:
    """The ``mine()`` / ``mine_hard_negatives`` arguments of one re-mining (top sampling)."""

    num_negatives: int
    range_min: int = 0
    relative_margin: float | None = None
    #: The pool's depth: the window the projection saw (ranks above it are never picked).
    range_max: int | None = None

    def __post_init__(self) -> None:
        if self.num_negatives < 1:
            raise ValueError("num_negatives must be positive")
        if self.range_min < 0:
            raise ValueError("range_min must be non-negative")

    def keep(
        self,
        rank: npt.NDArray[np.int64],
        score: npt.NDArray[np.float64],
        positive: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Candidates the margin and window keep (sentence-transformers' rules, ``margins``);
        ``range_min`` is applied after them, by ``selected``."""
        kept = np.ones(rank.shape, dtype=bool)
        if self.relative_margin is not None:
            kept = kept & st_relative_keep(score, positive, self.relative_margin)
        if self.range_max is not None:
            kept = kept & (rank <= self.range_max)
        return np.asarray(kept, dtype=bool)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments to paste into ``mine()``."""
        out: dict[str, Any] = {"range_min": self.range_min, "num_negatives": self.num_negatives}
        if self.relative_margin is not None:
            out["relative_margin"] = self.relative_margin
        if self.range_max is not None:
            out["range_max"] = self.range_max
        out["sampling_strategy"] = "top"
        return out

    def describe(self) -> str:
        """``mine(..., range_min=10, num_negatives=5, ...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs().items())
        return f"mine(..., {args})"


@dataclass(frozen=True)
class RemineOption:
    """A candidate re-mining with the set it would produce and that set's projected FN rate."""

    spec: RemineSpec
    #: Negatives the re-mining would produce (from the pool).
    negatives: int
    #: Queries that would get at least one negative.
    queries: int
    mean_rank: float
    projected: Interval
    kept_judged: int
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "arguments": self.spec.kwargs(),
            "describe": self.spec.describe(),
            "negatives": self.negatives,
            "queries": self.queries,
            "mean_rank": self.mean_rank,
            "projected": self.projected.as_dict(),
            "kept_judged": self.kept_judged,
            "exact": self.exact,
        }

    def sentence(self) -> str:
        """One sentence for an alert or a report."""
        p = self.projected
        rate = (
            f"FN rate {p.estimate:.1%} (exact, every candidate judged)"
            if self.exact
            else f"projected FN rate {p.estimate:.1%} [{p.lower:.1%}, {p.upper:.1%}]"
        )
        return (
            f"re-mine with {self.spec.describe()}: {rate}, {self.negatives:,} hard negatives "
            f"for {self.queries:,} queries (mean rank {self.mean_rank:.1f})"
        )


@dataclass(frozen=True)
class Prescription:
    """The re-mining to run (``best``), every confirmed option, and why."""

    target: float
    best: RemineOption | None
    options: list[RemineOption]
    #: The pool's depth and how many of its candidates were judged.
    pool_depth: int
    pool_judged: int
    pool_size: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "target": self.target,
            "best": None if self.best is None else self.best.as_dict(),
            "sentence": None if self.best is None else self.best.sentence(),
            "options": [o.as_dict() for o in self.options[:5]],
            "pool_depth": self.pool_depth,
            "pool_judged": self.pool_judged,
            "pool_size": self.pool_size,
            "notes": list(self.notes),
        }


def selected(pool: NegativeTable, spec: RemineSpec) -> npt.NDArray[np.bool_]:
    """Mask of the pool candidates a re-mining with ``spec`` picks (top sampling).

    As ``mine_hard_negatives`` does, per query: the candidates the margin keeps (within
    ``range_max``), then of those in rank order the first ``range_min`` skipped and the next
    ``num_negatives`` picked (the margin applies first, so ``range_min`` counts kept candidates).
    """
    if len(pool) == 0:
        return np.zeros(0, dtype=bool)
    keep = spec.keep(pool.rank, pool.score, pool.positive_score)
    order = np.lexsort((pool.rank, pool.query_index))
    k = keep[order]
    q = pool.query_index[order]
    csum = np.cumsum(k)
    start = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    before = np.repeat(np.r_[0, csum][start], np.diff(np.r_[start, len(q)]))
    position = csum - before
    out = np.zeros(len(pool), dtype=bool)
    out[order] = k & (position > spec.range_min) & (position <= spec.range_min + spec.num_negatives)
    return out


def _specs(num_negatives: int, depth: int, with_margins: bool) -> list[RemineSpec]:
    margins = RELATIVE_MARGIN_GRID if with_margins else (None,)
    return [
        RemineSpec(num_negatives, r, m, depth)
        for r in RANGE_MIN_GRID
        if r + num_negatives <= depth
        for m in margins
    ]


def prescribe(
    pool: NegativeTable,
    sample_rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    *,
    num_negatives: int,
    buckets: RankBuckets | None = None,
    eligible: npt.NDArray[np.bool_] | None = None,
    target: float = 0.05,
    confidence: float = 0.95,
    specs: Sequence[RemineSpec] | None = None,
) -> Prescription:
    """The least-changing re-mining confirmed to bring the FN rate to ``target``.

    ``sample_rows`` are the judged rows of ``pool`` (unsure ones left out) and
    ``false_negative`` their verdicts; ``eligible`` the judgeable pool rows the sample was drawn
    from (None: every row). ``specs`` overrides the candidate grid (``range_min`` in
    ``RANGE_MIN_GRID``, ``relative_margin`` in ``RELATIVE_MARGIN_GRID`` when the pool has scores,
    ``num_negatives`` as mined).
    """
    if not 0.0 < target < 1.0:
        raise ValueError("target must be between 0 and 1")
    rows = np.asarray(sample_rows, dtype=np.int64)
    fn = np.asarray(false_negative, dtype=bool)
    depth = int(pool.rank.max()) if len(pool) else 0
    elig = np.ones(len(pool), dtype=bool) if eligible is None else np.asarray(eligible, bool)
    notes: list[str] = []
    if rows.size == 0 or len(pool) == 0:
        return Prescription(target, None, [], depth, 0, int(elig.sum()), ["no judged candidate"])
    rb = buckets or RankBuckets()
    bucket = rb.assign(pool.rank)
    nb = len(rb)
    cands = list(specs) if specs is not None else _specs(num_negatives, depth, pool.has_scores)
    if not pool.has_scores:
        notes.append("the pool has no scores: only range_min re-minings were considered")
    judged_mask = np.zeros(len(pool), dtype=bool)
    judged_mask[rows] = True
    fn_mask = np.zeros(len(pool), dtype=bool)
    fn_mask[rows[fn]] = True

    masks = [selected(pool, s) for s in cands]
    x = np.stack([np.bincount(bucket[m & fn_mask], minlength=nb) for m in masks])
    n = np.stack([np.bincount(bucket[m & judged_mask], minlength=nb) for m in masks])
    size = np.stack([np.bincount(bucket[m & elig], minlength=nb) for m in masks])
    exact = n.sum(axis=1) >= size.sum(axis=1)
    tested = max(int((~exact).sum()), 1)
    level = 1.0 - (1.0 - confidence) / tested  # Bonferroni over the non-exact candidates
    proj = project(x, n, size, confidence=level)
    shown = project(x, n, size, confidence=confidence)
    passes = np.isfinite(proj.upper) & (proj.upper <= target + 1e-12)
    options: list[RemineOption] = []
    for i in np.flatnonzero(passes):
        m = masks[int(i)]
        options.append(
            RemineOption(
                cands[int(i)],
                int(m.sum()),
                len(np.unique(pool.query_index[m])),
                float(pool.rank[m].mean()) if m.any() else float("nan"),
                Interval(
                    float(shown.estimate[i]),
                    float(shown.lower[i]),
                    float(shown.upper[i]),
                    confidence,
                ),
                int(n[i].sum()),
                bool(exact[i]),
            )
        )
    # Most negatives, then the hardest; of equals the simplest (no margin, then least range_min).
    options.sort(
        key=lambda o: (
            -o.negatives,
            round(o.mean_rank, 9),
            o.spec.relative_margin is not None,
            o.spec.range_min,
        )
    )
    if not options:
        notes.append(
            f"no re-mining within the pool's {depth} ranks is confirmed at {target:.1%}"
            + ("" if bool(exact.all()) else "; more judged candidates may confirm one")
        )
    return Prescription(
        target,
        options[0] if options else None,
        options,
        depth,
        int(judged_mask.sum()),
        int(elig.sum()),
        notes,
    )
