"""Holes in a held-out set: re-scoring stored rankings, and the hole audit of a regression.

Pure computation over stored rankings (query -> top-K document ids, best first) and qrels
(query -> document -> grade); no I/O. Judging the pooled documents is the caller's (the oracles
live in ``mining``): ``plan_hole_audit`` pools, ``finish_hole_audit`` takes the labels.

Re-scoring (``rescore``) computes the metrics of ``evaluation.metrics`` from stored rankings, so
it equals a fresh evaluation under the same qrels exactly for every k up to the stored depth.

The hole audit of a regression (docs/holes.md): the queries whose metric@k fell against the
baseline are *lost*; the documents the regressed checkpoint ranked in its top k that the qrels do
not judge for that query pushed the lost positive down: they are the *displacing* documents. They
are pooled (whole queries, in a seeded random order, up to ``max_pairs`` pairs), judged, and
the drop is computed again with those judged relevant counted as relevant (for both checkpoints:
the number of relevant documents of the query grows too). Queries not lost keep their raw
difference. Lost queries left out of the pool by the bound get the mean adjusted difference of
the pooled ones (counted with the pooled ones' spread), and the interval widens by the sampling
error of that mean (lost queries x (1 - pooled / lost) x variance / pooled, a simple random
sample's). The interval is the normal interval of the mean per-query difference (paired over
queries).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.evaluation.metrics import JudgementIndex, QueryMetrics, compute_metrics
from recallwatch.stats.intervals import Interval, z_value
from recallwatch.stats.student_t import student_t_quantile

__all__ = [
    "AUDITED_METRICS",
    "HoleAudit",
    "HolePlan",
    "Rescored",
    "finish_hole_audit",
    "plan_hole_audit",
    "rescore",
]

#: Metrics the hole audit recomputes (binary relevance is enough for them).
AUDITED_METRICS = ("recall", "success", "mrr", "ndcg", "map", "precision")

Rankings = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Rescored:
    """Metrics recomputed from stored rankings: the queries (in order) and their values."""

    query_ids: list[str]
    metrics: QueryMetrics

    def per_query(self, metric: str, k: int) -> dict[str, float]:
        """Each query's metric@k."""
        values = self.metrics.per_query[metric][k]
        return dict(zip(self.query_ids, values.tolist(), strict=True))


def _depth(rankings: Rankings) -> int:
    return max((len(ids) for ids in rankings.values()), default=0)


def rescore(
    rankings: Rankings,
    qrels: Qrels,
    ks: Sequence[int],
    *,
    relevance_level: int = 1,
    depth: int | None = None,
) -> Rescored:
    """Metrics at ``ks`` of stored rankings under ``qrels``.

    Queries with no relevant document under ``qrels`` are left out, as an evaluation leaves them
    out. ``depth``: how many documents the rankings were stored with (default: the longest list);
    a k above it raises ``ValueError`` (the stored lists cannot say what ranked below).
    """
    ks_t = tuple(sorted(set(int(k) for k in ks)))
    stored = _depth(rankings) if depth is None else depth
    if not ks_t or ks_t[0] < 1:
        raise ValueError("k values must be positive integers")
    if ks_t[-1] > stored:
        raise ValueError(
            f"the stored rankings hold {stored} documents per query; k={ks_t[-1]} needs more "
            "(raise evaluation.stored_rankings)"
        )
    query_ids = [
        q for q in rankings if any(g >= relevance_level for g in qrels.get(q, {}).values())
    ]
    position: dict[str, int] = {}
    for q in query_ids:
        for d in rankings[q]:
            position.setdefault(d, len(position))
        for d in qrels[q]:
            position.setdefault(d, len(position))
    matrix = np.full((len(query_ids), stored), -1, dtype=np.int64)
    for qi, q in enumerate(query_ids):
        ids = rankings[q][:stored]
        matrix[qi, : len(ids)] = [position[d] for d in ids]
    judgements = JudgementIndex.build(
        query_ids, qrels, position, relevance_level, num_docs=max(1, len(position))
    )
    return Rescored(query_ids, compute_metrics(matrix, judgements, ks_t))


@dataclass(frozen=True)
class HolePlan:
    """The pool of a hole audit: what to judge, and what the adjustment needs."""

    metric: str
    k: int
    relevance_level: int
    seed: int
    max_pairs: int
    #: The queries both checkpoints were scored on, in order, and their raw values.
    query_ids: list[str]
    before: npt.NDArray[np.float64]
    after: npt.NDArray[np.float64]
    #: Queries whose metric@k fell.
    lost: list[str]
    #: Lost queries whose displacing documents are all pooled (the others: left out by the bound).
    audited: list[str]
    #: (query, document, rank in the regressed checkpoint's list) to judge.
    pairs: list[tuple[str, str, int]]
    #: Displacing documents of all lost queries, pooled or not.
    displacing: int
    _before_rankings: Rankings = field(repr=False, default_factory=dict)
    _after_rankings: Rankings = field(repr=False, default_factory=dict)
    _qrels: Qrels = field(repr=False, default_factory=dict)


def plan_hole_audit(
    before: Rankings,
    after: Rankings,
    qrels: Qrels,
    *,
    metric: str = "recall",
    k: int = 10,
    relevance_level: int = 1,
    max_pairs: int = 200,
    seed: int = 0,
) -> HolePlan:
    """Find the lost queries of ``after`` against ``before`` and pool their displacing documents.

    Both rankings must hold at least ``k`` documents per query (``rescore`` raises otherwise).
    """
    if metric not in AUDITED_METRICS:
        raise ValueError(f"the hole audit recomputes {', '.join(AUDITED_METRICS)}, not {metric!r}")
    if max_pairs < 0:
        raise ValueError("max_pairs must be >= 0")
    common = {q: before[q] for q in before if q in after}
    b = rescore(common, qrels, [k], relevance_level=relevance_level, depth=max(k, _depth(common)))
    a = rescore(
        {q: after[q] for q in b.query_ids},
        qrels,
        [k],
        relevance_level=relevance_level,
        depth=max(k, _depth(after)),
    )
    before_v = b.metrics.per_query[metric][k]
    after_v = a.metrics.per_query[metric][k]
    lost = [q for q, x, y in zip(b.query_ids, before_v, after_v, strict=True) if y < x]
    holes = {
        q: [(d, r) for r, d in enumerate(after[q][:k], start=1) if d not in qrels.get(q, {})]
        for q in lost
    }
    rng = np.random.default_rng(seed)
    order = [lost[i] for i in rng.permutation(len(lost))]
    audited: list[str] = []
    pairs: list[tuple[str, str, int]] = []
    for q in order:
        if len(pairs) + len(holes[q]) <= max_pairs:
            audited.append(q)
            pairs.extend((q, d, r) for d, r in holes[q])
    return HolePlan(
        metric=metric,
        k=k,
        relevance_level=relevance_level,
        seed=seed,
        max_pairs=max_pairs,
        query_ids=b.query_ids,
        before=before_v,
        after=after_v,
        lost=lost,
        audited=audited,
        pairs=pairs,
        displacing=sum(len(h) for h in holes.values()),
        _before_rankings={q: before[q] for q in b.query_ids},
        _after_rankings={q: after[q] for q in b.query_ids},
        _qrels=qrels,
    )


@dataclass(frozen=True)
class HoleAudit:
    """The outcome of a hole audit: the raw and the hole-adjusted mean difference (after - before).

    ``raw`` and ``adjusted`` are differences of the metric (-0.041 = -4.1 points), each with its
    interval; ``significant`` says whether the adjusted interval still lies below 0.
    """

    metric: str
    k: int
    queries: int
    lost_queries: int
    audited_queries: int
    displacing: int
    pooled: int
    judged: int
    relevant: int
    raw: Interval
    adjusted: Interval
    seed: int
    max_pairs: int
    #: The pooled pairs judged relevant: (query, document).
    relevant_pairs: list[tuple[str, str]]

    @property
    def relevant_share(self) -> float | None:
        """Share of the judged displacing documents judged relevant (None: none judged)."""
        return self.relevant / self.judged if self.judged else None

    @property
    def significant(self) -> bool:
        """Whether the hole-adjusted drop is still significant (its interval lies below 0)."""
        return self.adjusted.upper < 0

    def summary(self) -> str:
        """E.g. ``recall@10 -4.1 pt; 38% of 52 judged displacing documents relevant;
        hole-adjusted -1.2 pt [-2.9, +0.4]``."""
        share = self.relevant_share
        judged = (
            f"{share:.0%} of {self.judged} judged displacing documents relevant"
            if share is not None
            else f"none of {self.pooled} displacing documents judged"
        )
        return (
            f"{self.metric}@{self.k} {_pt(self.raw.estimate)}; {judged}; hole-adjusted "
            f"{_pt(self.adjusted.estimate)} [{_pt(self.adjusted.lower, unit=False)}, "
            f"{_pt(self.adjusted.upper, unit=False)}]"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (differences as metric fractions)."""
        return {
            "metric": self.metric,
            "k": self.k,
            "queries": self.queries,
            "lost_queries": self.lost_queries,
            "audited_queries": self.audited_queries,
            "displacing_documents": self.displacing,
            "pooled": self.pooled,
            "judged": self.judged,
            "relevant": self.relevant,
            "relevant_share": self.relevant_share,
            "raw": _interval(self.raw),
            "adjusted": _interval(self.adjusted),
            "significant": self.significant,
            "seed": self.seed,
            "max_pairs": self.max_pairs,
            "summary": self.summary(),
        }


def _pt(value: float, *, unit: bool = True) -> str:
    return f"{value * 100:+.1f}" + (" pt" if unit else "")


def _interval(i: Interval) -> dict[str, float]:
    return {"estimate": i.estimate, "lower": i.lower, "upper": i.upper, "confidence": i.confidence}


def _mean_interval(
    values: npt.NDArray[np.float64],
    confidence: float,
    imputed: npt.NDArray[np.bool_] | None = None,
    spread: float = 0.0,
    extra: tuple[float, int] = (0.0, 0),
) -> Interval:
    """The interval of the mean of per-query values; ``imputed`` values (a mean filled in for
    queries left out of the pool) count with the ``spread`` (variance) of the values they stand
    for, and ``extra`` adds the sampling variance of that mean with its degrees of freedom: a t
    interval with Satterthwaite's degrees of freedom (a normal one without ``extra``)."""
    n = values.size
    mean = float(values.mean()) if n else 0.0
    sq = (values - mean) ** 2
    if imputed is not None and imputed.any():
        sq = np.where(imputed, sq + spread, sq)
    var = float(sq.sum()) / (n - 1) / n if n > 1 else 0.0
    extra_var, extra_df = extra
    if extra_var > 0 and extra_df > 0:
        df = (var + extra_var) ** 2 / (var**2 / max(1, n - 1) + extra_var**2 / extra_df)
        quantile = student_t_quantile(0.5 + confidence / 2, df)
    else:
        quantile = z_value(confidence)
    half = quantile * math.sqrt(var + extra_var)
    return Interval(mean, mean - half, mean + half, confidence)


def finish_hole_audit(
    plan: HolePlan,
    labels: Mapping[tuple[str, str], str | None],
    *,
    confidence: float = 0.95,
) -> HoleAudit:
    """Adjust the drop with the pooled pairs' labels (``relevant`` / ``not_relevant`` /
    ``unsure``; None or missing: not judged, counted as not relevant)."""
    judged = [(q, d) for q, d, _ in plan.pairs if labels.get((q, d)) is not None]
    relevant = [(q, d) for q, d in judged if labels.get((q, d)) == "relevant"]
    raw_diff = plan.after - plan.before
    adjusted = raw_diff.copy()
    extra_var, spread, diff_size = 0.0, 0.0, 0
    imputed = np.zeros(len(plan.query_ids), dtype=bool)
    if plan.audited:
        qrels = {q: dict(plan._qrels.get(q, {})) for q in plan.audited}
        for q, d in relevant:
            qrels[q][d] = plan.relevance_level
        b = rescore(
            {q: plan._before_rankings[q] for q in plan.audited},
            qrels,
            [plan.k],
            relevance_level=plan.relevance_level,
            depth=max(plan.k, _depth(plan._before_rankings)),
        )
        a = rescore(
            {q: plan._after_rankings[q] for q in plan.audited},
            qrels,
            [plan.k],
            relevance_level=plan.relevance_level,
            depth=max(plan.k, _depth(plan._after_rankings)),
        )
        diff = a.metrics.per_query[plan.metric][plan.k] - b.metrics.per_query[plan.metric][plan.k]
        index = {q: i for i, q in enumerate(plan.query_ids)}
        for q, v in zip(a.query_ids, diff.tolist(), strict=True):
            adjusted[index[q]] = v
        left_out = [q for q in plan.lost if q not in set(plan.audited)]
        if left_out:
            fill = float(diff.mean())
            for q in left_out:
                adjusted[index[q]] = fill
                imputed[index[q]] = True
            spread = float(diff.var(ddof=1)) if diff.size > 1 else 0.0
            n = len(plan.query_ids)
            lost, audited = len(plan.lost), diff.size
            diff_size = audited
            # The pooled lost queries are a simple random sample of the lost ones: the mean
            # filled in for the others has the finite-population variance of a sample mean.
            extra_var = (lost / n) ** 2 * (1 - audited / lost) * spread / audited
    return HoleAudit(
        metric=plan.metric,
        k=plan.k,
        queries=len(plan.query_ids),
        lost_queries=len(plan.lost),
        audited_queries=len(plan.audited),
        displacing=plan.displacing,
        pooled=len(plan.pairs),
        judged=len(judged),
        relevant=len(relevant),
        raw=_mean_interval(raw_diff, confidence),
        adjusted=_mean_interval(
            adjusted, confidence, imputed, spread, (extra_var, max(0, diff_size - 1))
        ),
        seed=plan.seed,
        max_pairs=plan.max_pairs,
        relevant_pairs=relevant,
    )
