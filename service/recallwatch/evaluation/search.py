"""Exact top-K retrieval with faiss, streamed over corpus shards.

Only exact (flat) search is used: approximate search would confound the measurement. The corpus
arrives in shards; each shard is searched with faiss' brute-force kernels (the same code an
``IndexFlatIP`` / ``IndexFlatL2`` runs, without copying the shard into an index) and merged into a
running top-K, so peak memory is one shard plus ``num_queries x K`` results.

Scores are "higher is better" for every similarity: cosine and dot are inner products (cosine after
L2-normalising both sides), l2 is the negated squared Euclidean distance.

Tie-breaking: documents with exactly equal scores are ordered by document id in *descending* byte
order, the order trec_eval (and so pytrec_eval) sorts ties in, so our ranked lists and theirs agree.
Each shard is searched for ``K + TIE_MARGIN`` candidates; a query whose candidates are still tied at
the last one is searched wider until the tie is exhausted, so ties straddling the K-th place are
resolved in that order too.

Merging is deferred: each shard's candidates wait (scores and corpus positions, a few bytes per
query and candidate) until ``MERGE_WIDTH`` columns have gathered or the result is asked for, then
one partition merges them, instead of one per shard. The top-K under the total order (score, tie
rank) is the same whichever way the candidates are grouped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
import numpy.typing as npt

__all__ = [
    "MERGE_WIDTH",
    "TIE_MARGIN",
    "ExactSearcher",
    "Similarity",
    "TopK",
    "prepare_embeddings",
    "tiebreak_ranks",
]

Similarity = Literal["cosine", "dot", "l2"]
TIE_MARGIN = 8
#: Pending candidate columns per query that trigger a merge (bounds the memory of deferred merging
#: to about ``num_queries x MERGE_WIDTH x 12`` bytes).
MERGE_WIDTH = 512
_NORM_TOLERANCE = 1e-4
_LOW32 = np.uint64(0xFFFFFFFF)


class NonFiniteRowsError(ValueError):
    """Rows of an embedding matrix that contain NaN or inf (or are all zero, for cosine)."""

    def __init__(self, rows: npt.NDArray[np.int64], problem: str) -> None:
        self.rows = rows
        self.problem = problem
        super().__init__(f"{len(rows)} row(s) with {problem}, first at row {int(rows[0])}")


@dataclass(frozen=True)
class TopK:
    """The top-K documents per query: corpus positions and scores, best first."""

    #: (num_queries, K) float32, higher is better; -inf where fewer than K documents exist.
    scores: npt.NDArray[np.float32]
    #: (num_queries, K) int64 corpus positions; -1 where fewer than K documents exist.
    positions: npt.NDArray[np.int64]


def tiebreak_ranks(doc_ids: Sequence[str]) -> npt.NDArray[np.uint32]:
    """Rank each document for tie-breaking: 0 for the id that sorts last (trec_eval's order)."""
    order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__, reverse=True)
    ranks = np.empty(len(doc_ids), dtype=np.uint32)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(doc_ids), dtype=np.uint32)
    return ranks


def prepare_embeddings(
    x: npt.NDArray[np.floating], similarity: Similarity
) -> npt.NDArray[np.float32]:
    """Check rows are finite and, for cosine, L2-normalise them (in place where possible).

    A float32 C-ordered matrix whose rows need no change is returned as it is, read-only ones
    (a mapped file) included: only rows to normalise cost a copy.
    Raises ``NonFiniteRowsError`` naming the offending rows.
    """
    out = np.ascontiguousarray(x, dtype=np.float32)
    sq = np.einsum("ij,ij->i", out, out)
    bad = ~np.isfinite(sq)
    if bad.any():
        raise NonFiniteRowsError(np.flatnonzero(bad).astype(np.int64), "NaN or inf values")
    if similarity == "cosine":
        zero = sq == 0
        if zero.any():
            raise NonFiniteRowsError(
                np.flatnonzero(zero).astype(np.int64), "an all-zero vector (cosine is undefined)"
            )
        norms = np.sqrt(sq)
        off = np.abs(norms - 1.0) > _NORM_TOLERANCE
        if off.any() and not out.flags.writeable:
            out = out.copy()
        # Row by row, so a row's score never depends on which shard it was read in.
        if off.all():
            out /= norms[:, None]
        elif off.any():
            out[off] /= norms[off, None]
    return out


def _sortable(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """Map float32 to uint32 so that unsigned order equals float order, widened to uint64."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    neg = (bits & np.uint32(0x80000000)) != 0
    mapped = np.where(neg, ~bits, bits | np.uint32(0x80000000))
    return mapped.astype(np.uint64)


def _unsortable(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.float32]:
    mapped = (keys >> np.uint64(32)).astype(np.uint32)
    pos = (mapped & np.uint32(0x80000000)) != 0
    bits = np.where(pos, mapped & np.uint32(0x7FFFFFFF), ~mapped)
    return bits.view(np.float32)


class ExactSearcher:
    """Accumulate exact top-K results over corpus shards."""

    def __init__(
        self,
        queries: npt.NDArray[np.floating],
        k: int,
        *,
        similarity: Similarity = "cosine",
        tiebreak: npt.NDArray[np.uint32],
    ) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if queries.ndim != 2:
            raise ValueError(f"queries must be a 2-D matrix, got shape {queries.shape}")
        self.k = k
        self.similarity: Similarity = similarity
        self.dim = int(queries.shape[1])
        self._queries = prepare_embeddings(queries, similarity)
        self._tiebreak = tiebreak
        nq = self._queries.shape[0]
        # key = (sortable score << 32) | (2^32 - 1 - tiebreak rank): larger key = better result.
        self._keys = np.zeros((nq, 0), dtype=np.uint64)
        self._positions = np.zeros((nq, 0), dtype=np.int64)
        # Candidates of shards searched but not merged yet: (scores, corpus positions) blocks.
        self._pending: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]] = []
        self._pending_width = 0
        self.docs_seen = 0

    def add(self, shard: npt.NDArray[np.float32], positions: npt.NDArray[np.int64]) -> None:
        """Search one prepared shard; ``positions[i]`` is the corpus position of ``shard[i]``."""
        if shard.ndim != 2 or shard.shape[1] != self.dim:
            raise ValueError(
                f"shard has shape {shard.shape}, expected (n, {self.dim}) like the queries"
            )
        n = shard.shape[0]
        if n == 0:
            return
        nq = self._queries.shape[0]
        fetch = min(self.k + TIE_MARGIN, n)
        scores, local = self._knn(self._queries, shard, fetch)
        overflow = np.zeros(0, dtype=np.int64)
        if self.k <= fetch < n:
            # Where the last fetched score still equals the K-th, more tied documents may lie
            # beyond the fetch: those rows are searched wider so ties resolve in trec_eval's order.
            overflow = np.flatnonzero(scores[:, fetch - 1] == scores[:, self.k - 1])
        if len(overflow) == 0:  # the common case: keep the candidates, merge later
            self._pending.append((scores, positions[local]))
            self._pending_width += fetch
            if self._pending_width >= MERGE_WIDTH:
                self._merge_pending()
            self.docs_seen += n
            return
        # Some rows have ties beyond the fetch: merge everything now, those rows wider.
        self._merge_pending()
        width = min(self.k, self._keys.shape[1] + fetch)
        keys = np.empty((nq, width), dtype=np.uint64)
        pos = np.empty((nq, width), dtype=np.int64)
        normal = np.setdiff1d(np.arange(nq), overflow, assume_unique=True)
        keys[normal], pos[normal] = self._merge(normal, scores[normal], local[normal], positions)
        wider = fetch
        while len(overflow):
            wider = min(n, wider * 4)
            s2, l2 = self._knn(self._queries[overflow], shard, wider)
            done = (s2[:, wider - 1] != s2[:, self.k - 1]) | (wider == n)
            rows = overflow[done]
            keys[rows], pos[rows] = self._merge(rows, s2[done], l2[done], positions)
            overflow = overflow[~done]
        self._keys, self._positions = keys, pos
        self.docs_seen += n

    def add_candidates(
        self, scores: npt.NDArray[np.float32], positions: npt.NDArray[np.int64]
    ) -> None:
        """Add candidates scored elsewhere (another searcher's top-K, e.g. a Ray shard's): row
        ``i`` of ``scores`` and ``positions`` scores query ``i`` against those corpus positions.
        They are merged in the same order as searched ones (score, then the tie-break rank)."""
        if scores.shape != positions.shape or scores.shape[0] != self._queries.shape[0]:
            raise ValueError(
                f"candidates have shapes {scores.shape} and {positions.shape}, expected "
                f"({self._queries.shape[0]}, width) for both"
            )
        if positions.size and int(positions.min()) < 0:
            raise ValueError("candidate positions must be corpus positions (no -1 padding)")
        self._pending.append((scores.astype(np.float32, copy=False), positions))
        self._pending_width += scores.shape[1]
        if self._pending_width >= MERGE_WIDTH:
            self._merge_pending()

    def _knn(
        self, queries: npt.NDArray[np.float32], shard: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        if self.similarity == "l2":
            dist, local = faiss.knn(queries, shard, k, metric=faiss.METRIC_L2)
            scores = -dist
        else:
            scores, local = faiss.knn(queries, shard, k, metric=faiss.METRIC_INNER_PRODUCT)
        scores += np.float32(0.0)  # -0.0 -> +0.0, so equal scores get equal keys
        return scores, local

    def _merge(
        self,
        rows: npt.NDArray[np.int64] | slice,
        scores: npt.NDArray[np.float32],
        local: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
        """Merge candidates of ``rows`` into their running top-K; return the new keys/positions."""
        return self._merge_positions(rows, [scores], [positions[local]])

    def _merge_pending(self) -> None:
        """Merge the candidates of every shard searched since the last merge."""
        if self._pending:
            scores = [s for s, _ in self._pending]
            positions = [p for _, p in self._pending]
            self._pending, self._pending_width = [], 0
            self._keys, self._positions = self._merge_positions(slice(None), scores, positions)

    def _merge_positions(
        self,
        rows: npt.NDArray[np.int64] | slice,
        scores: list[npt.NDArray[np.float32]],
        positions: list[npt.NDArray[np.int64]],
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
        """Merge blocks of candidates (scores and corpus positions) of ``rows`` into their running
        top-K in one partition; return the new keys/positions."""
        keys = [self._keys[rows]]
        keys += [
            (_sortable(s) << np.uint64(32)) | (_LOW32 - self._tiebreak[p].astype(np.uint64))
            for s, p in zip(scores, positions, strict=True)
        ]
        key = np.concatenate(keys, axis=1)
        pos = np.concatenate([self._positions[rows], *positions], axis=1)
        width = key.shape[1]
        if width > self.k:
            top = np.argpartition(key, width - self.k, axis=1)[:, width - self.k :]
            key = np.take_along_axis(key, top, axis=1)
            pos = np.take_along_axis(pos, top, axis=1)
        return key, pos

    def result(self) -> TopK:
        """Return the merged top-K, best first, padded to K columns."""
        self._merge_pending()
        order = np.argsort(self._keys, axis=1)[:, ::-1]
        keys = np.take_along_axis(self._keys, order, axis=1)
        pos = np.take_along_axis(self._positions, order, axis=1)
        scores = _unsortable(keys)
        nq, width = keys.shape
        if width < self.k:
            pad = self.k - width
            scores = np.concatenate([scores, np.full((nq, pad), -np.inf, dtype=np.float32)], axis=1)
            pos = np.concatenate([pos, np.full((nq, pad), -1, dtype=np.int64)], axis=1)
        return TopK(scores=np.ascontiguousarray(scores), positions=np.ascontiguousarray(pos))
