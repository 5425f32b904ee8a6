"""What a Ray worker runs: the query embeddings once, then one corpus shard per task.

Plain functions of plain arguments (the driver wraps them in ``ray.remote``), so a test or a
debugger can call them directly. A shard task reads only its own documents (``st`` / ``python:``:
encodes its slice of ``corpus.jsonl``; ``precomputed``: reads its rows of ``corpus.npy``), searches
them exactly against every query with the local path's ``ExactSearcher`` (its tie order within
the shard: document ids compare the same in a shard as in the whole corpus), and returns its
top-K: scores, corpus positions and the ids of the candidates, which the driver needs for the tie
order across shards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.encoders import EncoderOptions, kind_for, open_source
from recallwatch.encoders.base import CorpusShard
from recallwatch.encoders.precision import PrecisionReport
from recallwatch.encoders.precomputed import EMBEDDINGS_DIR, read_npy_header
from recallwatch.errors import EmbeddingError
from recallwatch.evaluation.distributed.plan import ShardSpec, read_documents, read_id_lines
from recallwatch.evaluation.search import (
    ExactSearcher,
    NonFiniteRowsError,
    Similarity,
    prepare_embeddings,
    tiebreak_ranks,
)
from recallwatch.heldout.beir import CORPUS, document_text
from recallwatch.heldout.sets import HeldoutSet

__all__ = ["QueryMeta", "ShardTopK", "encode_queries", "search_shard"]


@dataclass(frozen=True)
class QueryMeta:
    """What the driver learns from the query task (the matrix itself stays in the object store)."""

    encoder: str
    #: The precision the encoder resolved to (``auto`` settled by its probe); None: not computed
    #: by recallwatch. Every shard encodes in this precision.
    precision: str | None
    dim: int
    seconds: float
    #: The encoder's precision report (``records.precision``). The query task holds only the
    #: probe's documents, not the probe queries' judged ones: its probe shift is not measured.
    precision_report: PrecisionReport | None = None


@dataclass(frozen=True)
class ShardTopK:
    """The best ``width`` candidates of each query among some documents, best first."""

    #: (num_queries, width) float32 scores, higher is better.
    scores: npt.NDArray[np.float32]
    #: (num_queries, width) indices into ``ids`` / ``positions``.
    candidates: npt.NDArray[np.int64]
    #: Document id and corpus position of each distinct candidate.
    ids: list[str]
    positions: npt.NDArray[np.int64]
    #: Documents these candidates were chosen from.
    docs: int
    #: Seconds spent encoding or reading, and searching.
    encode_seconds: float = 0.0
    search_seconds: float = 0.0


def _options(options: dict[str, Any], precision: str | None) -> EncoderOptions:
    if precision is not None:  # every task uses the precision the query task settled on
        options = {**options, "precision": precision}
    return EncoderOptions.model_validate(options)


def encode_queries(
    spec: str, checkpoint: str, options: dict[str, Any], query_side: HeldoutSet
) -> tuple[npt.NDArray[np.float32], QueryMeta]:
    """The query matrix (the local path's ``source.queries``), and what the driver needs."""
    t0 = time.perf_counter()
    source = open_source(spec, checkpoint, _options(options, None), show_progress=False)
    queries = source.queries(query_side)
    precision = getattr(source, "precision", None)
    report = getattr(source, "precision_report", None)
    if isinstance(report, PrecisionReport) and report.verdict in ("passed", "failed"):
        # Its sub-corpus was the few probe documents the query side holds: not the local path's.
        report = replace(report, shift=None, note="not measured by the ray backend")
    meta = QueryMeta(
        source.name,
        precision,
        int(queries.shape[1]),
        time.perf_counter() - t0,
        report if isinstance(report, PrecisionReport) else None,
    )
    return queries, meta


def _text_blocks(
    spec: str,
    checkpoint: str,
    options: EncoderOptions,
    heldout_path: str,
    shard: ShardSpec,
    block_rows: int,
) -> tuple[list[str], Iterator[CorpusShard]]:
    """The shard's documents, encoded by the local path's embedding source, block by block."""
    root = Path(heldout_path)
    ids, titles, bodies = read_documents(root / CORPUS.name, shard.offset, shard.count, shard.start)
    part = HeldoutSet(
        name=root.name,
        path=root,
        split="",
        relevance_level=1,
        corpus_ids=ids,
        corpus_titles=titles,
        corpus_texts=[document_text(t, b) for t, b in zip(titles, bodies, strict=True)],
        query_ids=[],
        query_texts=[],
        qrels={},
    )
    source = open_source(spec, checkpoint, options, show_progress=False)
    return ids, iter(source.corpus_shards(part, block_rows))


def _precomputed_blocks(
    checkpoint: str, shard: ShardSpec, block_rows: int
) -> tuple[list[str], Iterator[CorpusShard]]:
    folder = Path(checkpoint) / EMBEDDINGS_DIR
    ids = read_id_lines(folder / "corpus_ids.txt", shard.offset, shard.count)
    path = folder / "corpus.npy"
    shape, _, _ = read_npy_header(path)
    if shape[0] < shard.start + shard.count:
        raise EmbeddingError(
            f"{shape[0]} rows, but the corpus has at least {shard.start + shard.count} documents",
            path=path,
            field="shape",
        )
    matrix = np.load(path, mmap_mode="r")

    def blocks() -> Iterator[CorpusShard]:
        for a in range(0, shard.count, block_rows):
            b = min(a + block_rows, shard.count)
            rows = np.arange(shard.start + a, shard.start + b, dtype=np.int64)
            local = np.arange(a, b, dtype=np.int64)
            yield CorpusShard(matrix[shard.start + a : shard.start + b], local, str(path), rows)

    return ids, blocks()


def _prepared(
    block: CorpusShard, shard: ShardSpec, similarity: Similarity
) -> npt.NDArray[np.float32]:
    """``prepare_embeddings`` of a block, its errors naming the document (as the local path)."""
    try:
        return prepare_embeddings(block.embeddings, similarity)
    except NonFiniteRowsError as exc:
        first = int(exc.rows[0])
        raise EmbeddingError(
            f"corpus embedding of the document at corpus position "
            f"{shard.start + int(block.positions[first])} (row {int(block.source_rows[first])}) "
            f"has {exc.problem}; {len(exc.rows)} row(s) in this block are affected",
            path=block.origin,
        ) from exc


def search_shard(
    spec: str,
    checkpoint: str,
    options: dict[str, Any],
    precision: str | None,
    heldout_path: str,
    shard: ShardSpec,
    queries: npt.NDArray[np.float32],
    k: int,
    similarity: Similarity,
    block_rows: int,
) -> ShardTopK:
    """Encode (or read) one shard in blocks of ``block_rows`` and return its exact top-K."""
    t0 = time.perf_counter()
    if kind_for(spec).reads_embeddings:
        ids, blocks = _precomputed_blocks(checkpoint, shard, block_rows)
    else:
        opts = _options(options, precision)
        ids, blocks = _text_blocks(spec, checkpoint, opts, heldout_path, shard, block_rows)
    # Within the shard, ranks among its own ids order ties as ranks in the whole corpus do.
    searcher = ExactSearcher(queries, k, similarity=similarity, tiebreak=tiebreak_ranks(ids))
    encode, search, seen = time.perf_counter() - t0, 0.0, 0
    while True:
        t0 = time.perf_counter()
        block = next(blocks, None)
        if block is None:
            encode += time.perf_counter() - t0
            break
        prepared = _prepared(block, shard, similarity)
        t1 = time.perf_counter()
        encode += t1 - t0
        if prepared.shape[1] != searcher.dim:
            raise EmbeddingError(
                f"corpus dimension {prepared.shape[1]} does not match the query dimension "
                f"{searcher.dim}",
                path=block.origin,
                field="dimension",
            )
        searcher.add(prepared, block.positions)
        seen += len(block.positions)
        search += time.perf_counter() - t1
    if seen != shard.count:
        raise EmbeddingError(
            f"shard {shard.index} covered {seen} of its {shard.count} documents",
            path=checkpoint,
        )
    top = searcher.result()
    width = min(k, shard.count)
    local = top.positions[:, :width]
    distinct = np.unique(local)
    return ShardTopK(
        scores=np.ascontiguousarray(top.scores[:, :width]),
        candidates=np.searchsorted(distinct, local).astype(np.int64),
        ids=[ids[int(i)] for i in distinct],
        positions=distinct + shard.start,
        docs=shard.count,
        encode_seconds=encode,
        search_seconds=search,
    )
