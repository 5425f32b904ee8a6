"""Per-query views of stored outcomes: a metric per query, and what two evaluations differ on.

An evaluation stores, for each query, the 1-based rank of each relevant document (0 = not in the
top K searched): ``query -> relevant doc -> rank``. From that alone the alerting rules and the
pages recompute a per-query metric at any k (``per_query_metric``) and compare two evaluations
query by query (``lost_queries``). Pure: plain data in, plain data out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["LostQuery", "Metric", "lost_queries", "per_query_metric"]

#: The metrics a per-query value can be recomputed for from stored outcomes.
Metric = Literal["recall", "success", "mrr", "ndcg"]


def per_query_metric(
    outcomes: Mapping[str, Mapping[str, int]], metric: Metric, k: int
) -> dict[str, float]:
    """Per-query metric@k from stored outcomes (query -> relevant doc -> 1-based rank, 0 = missed).

    ``ndcg`` uses binary gains: the outcomes keep which relevant documents were found, not their
    grades, so on graded judgements it differs from the evaluation's reported nDCG.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    out: dict[str, float] = {}
    for qid, ranks in outcomes.items():
        if not ranks:
            continue
        hits = sorted(r for r in ranks.values() if 0 < r <= k)
        if metric == "recall":
            out[qid] = len(hits) / len(ranks)
        elif metric == "success":
            out[qid] = 1.0 if hits else 0.0
        elif metric == "mrr":
            out[qid] = 1.0 / hits[0] if hits else 0.0
        elif metric == "ndcg":
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(ranks), k)))
            out[qid] = sum(1.0 / math.log2(r + 1) for r in hits) / ideal
        else:
            raise ValueError(f"unknown metric {metric!r}")
    return out


@dataclass(frozen=True)
class LostQuery:
    """A query that lost relevant documents from its top k, with the most telling lost document."""

    query_id: str
    #: Relevant documents in the top k before and not after.
    lost: int
    recall_before: float
    recall_after: float
    #: The lost document that ranked best before, and its ranks (0: not retrieved at all).
    doc_id: str
    rank_before: int
    rank_after: int


def lost_queries(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]], k: int
) -> list[LostQuery]:
    """Queries whose relevant documents left the top k, the largest recall drop first."""
    out = []
    for qid, ranks_before in before.items():
        ranks_after = after.get(qid)
        if ranks_after is None or not ranks_before:
            continue
        lost = [
            (r, doc)
            for doc, r in ranks_before.items()
            if 0 < r <= k and not 0 < ranks_after.get(doc, 0) <= k
        ]
        if not lost:
            continue
        rank, doc = min(lost)
        total = len(ranks_before)
        out.append(
            LostQuery(
                query_id=qid,
                lost=len(lost),
                recall_before=sum(1 for r in ranks_before.values() if 0 < r <= k) / total,
                recall_after=sum(1 for r in ranks_after.values() if 0 < r <= k) / total,
                doc_id=doc,
                rank_before=rank,
                rank_after=ranks_after.get(doc, 0),
            )
        )
    out.sort(key=lambda q: (q.recall_after - q.recall_before, q.rank_before, q.query_id))
    return out
