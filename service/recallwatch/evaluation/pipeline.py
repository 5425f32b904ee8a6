"""Evaluate one checkpoint on one held-out set: embed, search exactly, score.

The pipeline, top-down: query embeddings -> corpus shards (encoded or read) -> exact top-K search
merged across shards -> per-query metrics. Each stage is timed with an injected clock.

The corpus is read one shard ahead: while shard i is searched, a worker thread reads (or encodes)
and prepares shard i + 1 (file reads, the float16 conversion, normalisation and faiss all release
the GIL). So a source's shard must stay valid while the next one is produced (``PrecomputedSource``
alternates two buffers). The first shard is read while the judgements are indexed, so that work
is neither before nor after the search. The ``encode`` timing is the time the search waited for a
shard, the ``search`` timing the searching itself, the ``metrics`` timing the judgement index, the
final merge of the top-K and the metrics.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from recallwatch.encoders.base import CorpusShard, EmbeddingSource
from recallwatch.encoders.precision import PrecisionReport
from recallwatch.errors import EmbeddingError
from recallwatch.evaluation.metrics import (
    DEFAULT_KS,
    JudgementIndex,
    QueryMetrics,
    compute_metrics,
    judged_positions,
)
from recallwatch.evaluation.search import (
    ExactSearcher,
    NonFiniteRowsError,
    Similarity,
    TopK,
    prepare_embeddings,
    tiebreak_ranks,
)
from recallwatch.heldout.sets import HeldoutSet

__all__ = ["DEFAULT_SHARD_BYTES", "Evaluation", "evaluate", "shard_rows_for"]

log = logging.getLogger(__name__)

#: Corpus bytes per shard when no row count is given: 131,072 rows at 384 dimensions. Two shards
#: are held at once (one searched, one read ahead). Fewer, larger shards search faster: each shard
#: restarts faiss' per-query top-K selection (measured: 8 shards of a 500,000-row corpus cost ~7%
#: more search time than one pass, 4 shards ~3%).
DEFAULT_SHARD_BYTES = 192 << 20


def shard_rows_for(dim: int, shard_bytes: int = DEFAULT_SHARD_BYTES) -> int:
    """Rows per shard so that a float32 shard of ``dim`` columns is about ``shard_bytes``."""
    return max(1024, shard_bytes // (4 * max(1, dim)))


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one checkpoint on one held-out set."""

    dataset: str
    split: str
    encoder: str
    similarity: Similarity
    ks: tuple[int, ...]
    num_queries: int
    num_excluded_queries: int
    num_docs: int
    dim: int
    metrics: QueryMetrics
    topk: TopK
    #: seconds per stage: encode (embedding or reading), search, metrics
    timings: dict[str, float] = field(default_factory=dict)
    #: The numeric precision of the encoder (``fp32``, ``bf16``, ``fp16``); None where the
    #: embeddings were not computed by recallwatch (``precomputed``, ``python:``).
    precision: str | None = None
    #: What the encoder says of its precision: asked, used, the parity probe's verdict and its
    #: probe shift (``records.precision``); None where the source says nothing.
    precision_report: PrecisionReport | None = None

    def mean(self, metric: str, k: int) -> float:
        """Mean of a metric at cutoff k."""
        return self.metrics.mean(metric, k)


def _prepared(shard: CorpusShard, heldout: HeldoutSet, similarity: Similarity) -> np.ndarray:
    try:
        return prepare_embeddings(shard.embeddings, similarity)
    except NonFiniteRowsError as exc:
        first = int(exc.rows[0])
        doc = heldout.corpus_ids[int(shard.positions[first])]
        raise EmbeddingError(
            f"corpus embedding of document {doc!r} (row {int(shard.source_rows[first])}) "
            f"has {exc.problem}; {len(exc.rows)} row(s) in this shard are affected",
            path=shard.origin,
        ) from exc


class _ReadAhead:
    """Each shard with its prepared block, the next one produced in a worker meanwhile.

    Production of the first shard starts at construction, so it overlaps whatever the caller does
    before asking for it. ``close`` waits for a running production, then closes the source.
    """

    def __init__(
        self, shards: Iterator[CorpusShard], prepare: Callable[[CorpusShard], np.ndarray]
    ) -> None:
        self._shards = shards
        self._prepare = prepare
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recallwatch-read-ahead")
        self._pending = self._pool.submit(self._produce)

    def _produce(self) -> tuple[CorpusShard, np.ndarray] | None:
        shard = next(self._shards, None)
        return None if shard is None else (shard, self._prepare(shard))

    def next(self) -> tuple[CorpusShard, np.ndarray] | None:
        """The next shard and its block (None after the last), and start producing the one after."""
        item = self._pending.result()
        if item is not None:
            self._pending = self._pool.submit(self._produce)
        return item

    def close(self) -> None:
        """Stop reading ahead and close the source."""
        if not self._pending.cancel():
            self._pending.exception()  # wait for a running read before closing its source
        self._pool.shutdown(wait=True)
        close = getattr(self._shards, "close", None)
        if callable(close):
            close()


def _search(
    searcher: ExactSearcher,
    reader: _ReadAhead,
    heldout: HeldoutSet,
    timings: dict[str, float],
    clock: Callable[[], float],
    progress: Progress | None,
) -> int:
    """Search every shard the reader produces; return the number of corpus rows searched."""
    seen = 0
    while True:
        t0 = clock()
        item = reader.next()
        t1 = clock()
        timings["encode"] += t1 - t0
        if item is None:
            return seen
        shard, block = item
        if block.shape[1] != searcher.dim:
            raise EmbeddingError(
                f"corpus dimension {block.shape[1]} does not match the query dimension "
                f"{searcher.dim}",
                path=shard.origin,
                field="dimension",
            )
        searcher.add(block, shard.positions)
        timings["search"] += clock() - t1
        seen += len(shard.positions)
        # Drop this shard before the one after the next is produced: a source may reuse or
        # unmap its memory then (two shards held at once, not three).
        del item, shard, block
        if progress is not None:
            progress(seen, heldout.num_docs)


def evaluate(
    heldout: HeldoutSet,
    source: EmbeddingSource,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    similarity: Similarity = "cosine",
    shard_rows: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate ``source``'s embeddings of ``heldout`` with exact search at cutoffs ``ks``.

    ``shard_rows``: corpus rows per shard (default: ``shard_rows_for`` the query dimension).
    """
    ks_t = tuple(sorted(set(int(k) for k in ks)))
    if not ks_t or ks_t[0] < 1:
        raise ValueError("k values must be positive integers")
    kmax = ks_t[-1]
    timings = {"encode": 0.0, "search": 0.0, "metrics": 0.0}

    t0 = clock()
    queries = source.queries(heldout)
    timings["encode"] += clock() - t0
    try:
        searcher = ExactSearcher(
            queries, kmax, similarity=similarity, tiebreak=tiebreak_ranks(heldout.corpus_ids)
        )
    except NonFiniteRowsError as exc:
        qid = heldout.query_ids[int(exc.rows[0])]
        raise EmbeddingError(
            f"query embedding of {qid!r} has {exc.problem}; {len(exc.rows)} query row(s) affected",
            path=source.name,
        ) from exc

    rows = shard_rows if shard_rows is not None else shard_rows_for(searcher.dim)
    reader = _ReadAhead(
        iter(source.corpus_shards(heldout, rows)),
        lambda shard: _prepared(shard, heldout, similarity),
    )
    with contextlib.closing(reader):
        # While the first shard is read: index the judgements, off the path after the search.
        t0 = clock()
        judgements = JudgementIndex.build(
            heldout.query_ids,
            heldout.qrels,
            judged_positions(heldout.query_ids, heldout.qrels, heldout.corpus_ids),
            heldout.relevance_level,
            num_docs=heldout.num_docs,
        )
        timings["metrics"] += clock() - t0
        seen = _search(searcher, reader, heldout, timings, clock, progress)
    if seen != heldout.num_docs:
        raise EmbeddingError(
            f"the embedding source covered {seen} of {heldout.num_docs} corpus documents",
            path=source.name,
        )
    t0 = clock()
    top = searcher.result()
    metrics = compute_metrics(top.positions, judgements, ks_t)
    timings["metrics"] += clock() - t0
    return Evaluation(
        dataset=heldout.name,
        split=heldout.split,
        encoder=source.name,
        similarity=similarity,
        ks=ks_t,
        num_queries=heldout.num_queries,
        num_excluded_queries=len(heldout.excluded_query_ids),
        num_docs=heldout.num_docs,
        dim=searcher.dim,
        metrics=metrics,
        topk=top,
        timings=timings,
        precision=getattr(source, "precision", None),
        precision_report=_report_of(source),
    )


def _report_of(source: object) -> PrecisionReport | None:
    """The source's ``precision_report`` where it has one."""
    report = getattr(source, "precision_report", None)
    return report if isinstance(report, PrecisionReport) else None
