"""Retrieval metrics per query and averaged, with trec_eval's definitions.

For a query with ranked list ``d_1 .. d_K``, graded judgements ``g(d)`` (0 when unjudged) and
``R`` = number of documents with ``g >= relevance_level``:

- ``recall@k``    = |relevant in top k| / R
- ``precision@k`` = |relevant in top k| / k               (k, even when fewer are retrieved)
- ``success@k``   = 1 if any relevant in top k else 0
- ``mrr@k``       = 1 / rank of the first relevant in top k, else 0
- ``ndcg@k``      = DCG@k / IDCG@k, gain = the judged grade (linear, as trec_eval), discount
  log2(rank + 1); the ideal list is every judged grade of the query, sorted, cut at k
- ``map@k``       = sum over relevant ranks r <= k of precision@r, divided by R (trec_eval's
  ``map_cut``; sentence-transformers divides by min(k, R) instead)

- ``unjudged@k``  = |documents in top k with no judgement for the query (any grade)| / k: the
  holes in the held-out set a checkpoint retrieves (BEIR's Hole@k; 1 - ``ir_measures``' Judged@k).
  It is not a quality metric: a checkpoint that surfaces unjudged documents may still be right.

The quality metrics equal pytrec_eval's ``recall_k``, ``P_k``, ``success_k``, ``recip_rank`` (on
the list cut at k), ``ndcg_cut_k`` and ``map_cut_k`` to 1e-9 (tests check it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_KS",
    "METRIC_NAMES",
    "JudgementIndex",
    "QueryMetrics",
    "compute_metrics",
    "judged_positions",
]

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 100)
METRIC_NAMES: tuple[str, ...] = (
    "recall",
    "success",
    "precision",
    "mrr",
    "ndcg",
    "map",
    "unjudged",
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class JudgementIndex:
    """Graded judgements of the evaluated queries, indexed for vectorised lookup."""

    num_docs: int
    #: sorted ``query_index * num_docs + doc_position`` of every judged pair
    keys: npt.NDArray[np.int64]
    #: grade of each key
    grades: npt.NDArray[np.int64]
    #: number of relevant documents (grade >= relevance_level) per query
    num_relevant: npt.NDArray[np.int64]
    #: per query, its judged grades > 0 sorted descending (for the ideal DCG)
    ideal_gains: list[npt.NDArray[np.float64]]
    relevance_level: int

    @classmethod
    def build(
        cls,
        query_ids: Sequence[str],
        qrels: Mapping[str, Mapping[str, int]],
        doc_position: Mapping[str, int],
        relevance_level: int = 1,
        *,
        num_docs: int | None = None,
    ) -> JudgementIndex:
        """Index ``qrels`` of the queries, in order; judged docs must be in ``doc_position``.

        ``doc_position`` may hold only the judged documents when ``num_docs`` gives the corpus
        size (``judged_positions`` builds such a mapping without indexing the whole corpus);
        otherwise the corpus size is ``len(doc_position)``.
        """
        if num_docs is None:
            num_docs = len(doc_position)
        judged = [qrels[qid] for qid in query_ids]
        counts = np.fromiter((len(j) for j in judged), dtype=np.int64, count=len(judged))
        total = int(counts.sum())
        docs = np.fromiter(
            (doc_position[did] for j in judged for did in j), dtype=np.int64, count=total
        )
        grade = np.fromiter((g for j in judged for g in j.values()), dtype=np.int64, count=total)
        query = np.repeat(np.arange(len(judged), dtype=np.int64), counts)
        relevant = np.bincount(query[grade >= relevance_level], minlength=len(judged))
        # Per query, its positive grades in descending order (for the ideal DCG).
        positive = grade > 0
        order = np.lexsort((-grade[positive], query[positive]))
        sorted_gains = grade[positive][order].astype(np.float64)
        bounds = np.cumsum(np.bincount(query[positive], minlength=len(judged)))[:-1]
        ideal = list(np.split(sorted_gains, bounds)) if judged else []
        key_arr = query * num_docs + docs
        order = np.argsort(key_arr, kind="stable")
        return cls(
            num_docs=num_docs,
            keys=key_arr[order],
            grades=grade[order],
            num_relevant=relevant.astype(np.int64),
            ideal_gains=ideal,
            relevance_level=relevance_level,
        )

    def grades_of(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Grade of each retrieved document (0 if unjudged or padding), same shape as input."""
        hit, idx = self._lookup(positions)
        return np.where(hit, self.grades[idx], 0) if len(self.keys) else np.zeros_like(positions)

    def judged_of(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether each retrieved document has a judgement (any grade) for its query."""
        return self._lookup(positions)[0]

    def _lookup(
        self, positions: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        nq = positions.shape[0]
        flat = np.arange(nq, dtype=np.int64)[:, None] * self.num_docs + positions
        if len(self.keys) == 0:
            return np.zeros(positions.shape, dtype=bool), np.zeros(positions.shape, dtype=np.intp)
        idx = np.minimum(np.searchsorted(self.keys, flat), len(self.keys) - 1)
        return (self.keys[idx] == flat) & (positions >= 0), idx


@dataclass(frozen=True)
class QueryMetrics:
    """Per-query metric arrays and their means: ``per_query[metric][k]`` has one value per query."""

    ks: tuple[int, ...]
    per_query: dict[str, dict[int, FloatArray]]

    def mean(self, metric: str, k: int) -> float:
        """Mean of a metric at cutoff k over the evaluated queries."""
        return float(self.per_query[metric][k].mean())

    def means(self) -> dict[str, dict[int, float]]:
        """All means, ``{metric: {k: value}}``."""
        return {
            m: {k: float(v.mean()) for k, v in by_k.items()} for m, by_k in self.per_query.items()
        }


def judged_positions(
    query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]], corpus_ids: Sequence[str]
) -> dict[str, int]:
    """Corpus position of each document judged for ``query_ids``: one pass over the corpus ids,
    without the whole-corpus dictionary (a few times cheaper on a large corpus)."""
    judged = {d for q in query_ids for d in qrels[q]}
    return {d: i for i, d in enumerate(corpus_ids) if d in judged}


def compute_metrics(
    positions: npt.NDArray[np.int64],
    judgements: JudgementIndex,
    ks: Sequence[int] = DEFAULT_KS,
) -> QueryMetrics:
    """Compute every metric of ``METRIC_NAMES`` at each k from ranked corpus positions."""
    ks_t = tuple(sorted(set(int(k) for k in ks)))
    if not ks_t or ks_t[0] < 1:
        raise ValueError("k values must be positive integers")
    kmax = ks_t[-1]
    if positions.shape[1] < kmax:
        raise ValueError(f"ranked lists have {positions.shape[1]} columns, need {kmax}")
    pos = positions[:, :kmax]
    grades = judgements.grades_of(pos)
    unjudged = (pos >= 0) & ~judgements.judged_of(pos)
    cum_unjudged = np.cumsum(unjudged, axis=1, dtype=np.int64)
    rel = grades >= judgements.relevance_level
    cum_rel = np.cumsum(rel, axis=1, dtype=np.int64)
    n_rel = judgements.num_relevant.astype(np.float64)
    # A padded slot (-1) is never relevant; ranks are 1-based.
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    any_rel = rel.any(axis=1)
    first = np.where(any_rel, rel.argmax(axis=1) + 1, kmax + 1)
    discount = 1.0 / np.log2(ranks + 1.0)
    gains = np.where(grades > 0, grades, 0).astype(np.float64)
    dcg_cum = np.cumsum(gains * discount, axis=1)
    prec_at_rank = cum_rel / ranks
    ap_cum = np.cumsum(np.where(rel, prec_at_rank, 0.0), axis=1)

    ideal = np.zeros((len(judgements.ideal_gains), kmax), dtype=np.float64)
    for qi, g in enumerate(judgements.ideal_gains):
        m = min(len(g), kmax)
        ideal[qi, :m] = g[:m]
    idcg_cum = np.cumsum(ideal * discount, axis=1)

    per_query: dict[str, dict[int, FloatArray]] = {m: {} for m in METRIC_NAMES}
    for k in ks_t:
        hits = cum_rel[:, k - 1].astype(np.float64)
        per_query["recall"][k] = hits / n_rel
        per_query["precision"][k] = hits / k
        per_query["success"][k] = (hits > 0).astype(np.float64)
        per_query["mrr"][k] = np.where(first <= k, 1.0 / first, 0.0)
        idcg = idcg_cum[:, k - 1]
        per_query["ndcg"][k] = np.divide(
            dcg_cum[:, k - 1], idcg, out=np.zeros_like(idcg), where=idcg > 0
        )
        per_query["map"][k] = ap_cum[:, k - 1] / n_rel
        per_query["unjudged"][k] = cum_unjudged[:, k - 1] / float(k)
    return QueryMetrics(ks=ks_t, per_query=per_query)
