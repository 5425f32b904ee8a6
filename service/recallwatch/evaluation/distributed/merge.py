"""Merging shards' top-K on the driver, in exactly the local path's order.

The local path keeps, per query, the K largest keys ``(score, tie-break rank)``: scores compared as
float32 bits (``search._sortable``), ties by document id in descending byte order (trec_eval's
order, ``search.tiebreak_ranks``). That order is total, so the top-K of all documents is the top-K
of the shards' top-Ks, whichever way they are grouped. Ranks among the candidates order them as
ranks in the whole corpus do, so the candidates' ids are all the driver needs, never the corpus.

The merge itself is ``search.ExactSearcher``'s: a searcher over the candidates (its "corpus" is
the candidate list) takes each shard's scored candidates (``ExactSearcher.add_candidates``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recallwatch.evaluation.distributed.tasks import ShardTopK
from recallwatch.evaluation.search import ExactSearcher, TopK, tiebreak_ranks

__all__ = ["merge", "to_topk"]


def merge(parts: Sequence[ShardTopK], k: int) -> ShardTopK:
    """The top-``k`` of several shards' (or earlier merges') candidates, best first."""
    parts = [p for p in parts if p.scores.shape[1] > 0]
    if len(parts) == 1:
        return parts[0]
    nq = parts[0].scores.shape[0]
    ids = [d for p in parts for d in p.ids]
    positions = np.concatenate([p.positions for p in parts])
    searcher = ExactSearcher(
        np.ones((nq, 1), dtype=np.float32), k, similarity="dot", tiebreak=tiebreak_ranks(ids)
    )
    base = 0
    for p in parts:
        searcher.add_candidates(p.scores, p.candidates + base)
        base += len(p.ids)
    top = searcher.result()
    docs = sum(p.docs for p in parts)
    width = min(k, sum(p.scores.shape[1] for p in parts))
    chosen = top.positions[:, :width]
    distinct = np.unique(chosen)
    return ShardTopK(
        scores=np.ascontiguousarray(top.scores[:, :width]),
        candidates=np.searchsorted(distinct, chosen).astype(np.int64),
        ids=[ids[int(i)] for i in distinct],
        positions=positions[distinct],
        docs=docs,
        encode_seconds=sum(p.encode_seconds for p in parts),
        search_seconds=sum(p.search_seconds for p in parts),
    )


def to_topk(merged: ShardTopK, k: int) -> TopK:
    """Corpus positions and scores, padded to ``k`` columns like ``ExactSearcher.result``."""
    nq, width = merged.scores.shape
    scores: npt.NDArray[np.float32] = np.full((nq, k), -np.inf, dtype=np.float32)
    positions: npt.NDArray[np.int64] = np.full((nq, k), -1, dtype=np.int64)
    scores[:, :width] = merged.scores
    positions[:, :width] = merged.positions[merged.candidates]
    return TopK(scores=scores, positions=positions)
