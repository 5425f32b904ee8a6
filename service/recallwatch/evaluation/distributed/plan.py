"""What the driver knows of a held-out set without loading its corpus, and the corpus shards.

The driver reads the queries and qrels (small) and streams ``corpus.jsonl`` once, keeping only:
the number of documents, the positions of the judged documents, and the byte offsets of at most
``MAX_GRANULES`` evenly spaced documents' lines (every ``granule``-th document: the granule doubles
whenever the list would grow past it). Its memory is O(queries + judged documents), not
O(corpus). Each shard is a run of whole granules: a task seeks to its offset and reads its own
documents (``read_documents``) or its own precomputed rows.

Positions are corpus positions: the document's index among the non-blank lines of
``corpus.jsonl``, as in the local path (``HeldoutSet.corpus_ids``).

Precomputed embeddings are read by row, so ``corpus_ids.txt`` must list the corpus ids in
``corpus.jsonl`` order (the local path also accepts another order or extra rows; here that is an
error naming the first line that differs). Duplicate document ids are detected within a shard,
not across shards: that would need every id in one place.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np

from recallwatch.encoders.precision import probe_sample
from recallwatch.encoders.precomputed import EMBEDDINGS_DIR
from recallwatch.errors import EmbeddingError, HeldoutError
from recallwatch.heldout.beir import (
    CORPUS,
    document_text,
    id_of,
    read_qrels,
    read_queries,
    string_of,
)
from recallwatch.heldout.sets import HeldoutSet, evaluated_queries, judged_documents

__all__ = [
    "MAX_GRANULES",
    "DistributedHeldout",
    "JudgedPositions",
    "ShardSpec",
    "plan",
    "read_documents",
    "read_id_lines",
]

#: Byte offsets the driver keeps at most (shards start at one of them); even, see ``_scan``.
MAX_GRANULES = 4096
#: Documents given to the ``st`` encoder's ``auto`` parity probe (its ``probe_texts``).
PROBE_TEXTS = 8


@dataclass(frozen=True)
class ShardSpec:
    """One shard: ``count`` documents from corpus position ``start``."""

    index: int
    start: int
    count: int
    #: Byte offset of its first line: in ``corpus.jsonl``, or ``corpus_ids.txt`` (precomputed).
    offset: int


class JudgedPositions(Mapping[str, int]):
    """Corpus positions of the judged documents only; its length is the whole corpus's, as the
    metrics' ``JudgementIndex`` takes ``len(doc_position)`` for the number of documents."""

    def __init__(self, positions: dict[str, int], num_docs: int) -> None:
        self._positions = positions
        self._num_docs = num_docs

    def __getitem__(self, doc: str) -> int:
        return self._positions[doc]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return self._num_docs


@dataclass(frozen=True)
class DistributedHeldout:
    """A held-out set as the driver holds it: queries, qrels, judged positions, shards."""

    #: The queries and judgements, with the corpus fields holding only the ``auto`` precision
    #: probe's documents (the ones the local path's probe picks): what the query task needs.
    query_side: HeldoutSet
    num_docs: int
    doc_position: JudgedPositions
    shards: tuple[ShardSpec, ...]

    @property
    def query_ids(self) -> list[str]:
        """The evaluated queries, in ``queries.jsonl`` order."""
        return self.query_side.query_ids

    def relevant(self, query_id: str) -> dict[str, int]:
        """The relevant documents of a query (score >= relevance_level)."""
        return self.query_side.relevant(query_id)


def _lines(fh: IO[bytes], offset: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, stripped line) of each non-blank line from ``offset``."""
    fh.seek(offset)
    at = offset
    for raw in fh:
        line = raw.strip()
        if line:
            yield at, line
        at += len(raw)


def _object(line: bytes, path: Path, where: str) -> dict[str, object]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HeldoutError(f"{where}: not valid JSON or UTF-8 ({exc})", path=path) from exc
    if not isinstance(obj, dict):
        raise HeldoutError(f"{where}: expected a JSON object", path=path)
    return obj


def read_documents(
    path: Path, offset: int, count: int, start: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """Ids, titles and bodies of ``count`` documents from the line at byte ``offset``
    (``start`` is the first one's corpus position, for messages)."""
    ids: list[str] = []
    titles: list[str] = []
    bodies: list[str] = []
    seen: dict[str, int] = {}
    with path.open("rb") as fh:
        for _, line in _lines(fh, offset):
            if len(ids) == count:
                break
            pos = start + len(ids)
            obj = _object(line, path, f"document at corpus position {pos}")
            # beir's validation; line numbers are unknown here, so positions stand in for them.
            ident = id_of(obj, path, pos + 1)
            if ident in seen:
                raise HeldoutError(
                    f"duplicate document id {ident!r} (positions {seen[ident]} and {pos})",
                    path=path,
                )
            seen[ident] = pos
            titles.append(string_of(obj, "title", path, pos + 1, required=False))
            bodies.append(string_of(obj, "text", path, pos + 1, required=True))
            ids.append(ident)
    if len(ids) != count:
        raise HeldoutError(
            f"expected {count} documents from position {start}, found {len(ids)}: "
            "the corpus changed while it was evaluated",
            path=path,
        )
    return ids, titles, bodies


def read_id_lines(path: Path, offset: int, count: int) -> list[str]:
    """``count`` stripped ids from the line at byte ``offset`` of an id file."""
    with path.open("rb") as fh:
        ids = [line.decode("utf-8") for _, line in itertools.islice(_lines(fh, offset), count)]
    if len(ids) != count:
        raise EmbeddingError(
            f"expected {count} ids from byte {offset}, found {len(ids)}", path=path
        )
    return ids


def _queries_and_qrels(
    root: Path, split: str, relevance_level: int
) -> tuple[list[str], list[str], dict[str, dict[str, int]], list[str], dict[str, int]]:
    """Evaluated query ids and texts, their grades, excluded ids, and judged doc -> qrels line
    (the same selection as ``heldout.load_heldout``)."""
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise HeldoutError(f"no qrels for split {split!r}", path=qrels_path)
    queries_path = root / "queries.jsonl"
    queries = read_queries(queries_path)
    raw = read_qrels(qrels_path)
    judged_line = judged_documents(raw, queries, queries_path=queries_path, qrels_path=qrels_path)
    query_ids, qrels, excluded = evaluated_queries(
        queries, raw, relevance_level, split=split, qrels_path=qrels_path
    )
    return query_ids, [queries[q] for q in query_ids], qrels, excluded, judged_line


def _scan(
    corpus: Path, judged: set[str], id_file: Path | None
) -> tuple[int, dict[str, int], list[int], int]:
    """Stream the corpus: (documents, judged doc -> position, offset of each granule, granule).

    With ``id_file`` (precomputed), its lines must be the corpus ids in order; the offsets are
    then that file's.
    """
    positions: dict[str, int] = {}
    offsets: list[int] = []
    n, granule = 0, 1
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(corpus.open("rb"))
        id_lines = None
        if id_file is not None:
            try:
                id_lines = _lines(stack.enter_context(id_file.open("rb")), 0)
            except FileNotFoundError as exc:
                raise EmbeddingError("id file not found", path=id_file) from exc
        for at, line in _lines(fh, 0):
            obj = _object(line, corpus, f"document at corpus position {n}")
            ident = id_of(obj, corpus, n + 1)
            if id_lines is not None:
                got = next(id_lines, None)
                if got is None or got[1].decode("utf-8", errors="replace") != ident:
                    found = "the end of the file" if got is None else repr(got[1].decode())
                    raise EmbeddingError(
                        f"row {n} is {found}, but corpus position {n} is {ident!r}: the ray "
                        "backend reads precomputed rows by position, so corpus_ids.txt must list "
                        "the corpus.jsonl ids in the same order",
                        path=id_file,
                    )
                at = got[0]
            if n % granule == 0:
                offsets.append(at)
                if len(offsets) > MAX_GRANULES:  # keep every other: docs 0, 2g, 4g ... MAX * g
                    offsets, granule = offsets[::2], granule * 2
            if ident in judged:
                positions[ident] = n
            n += 1
        if id_lines is not None and next(id_lines, None) is not None:
            raise EmbeddingError(
                f"more rows than the corpus's {n} documents; the ray backend needs exactly one "
                "row per corpus document, in corpus.jsonl order",
                path=id_file,
            )
    if n == 0:
        raise HeldoutError(CORPUS.empty_message, path=corpus)
    return n, positions, offsets, granule


def _shards(
    num_docs: int, offsets: Sequence[int], granule: int, shards: int
) -> tuple[ShardSpec, ...]:
    """Split the granules evenly over at most ``shards`` shards."""
    granules = len(offsets)
    bounds = np.linspace(0, granules, num=min(shards, granules) + 1).round().astype(int)
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        start, stop = int(a) * granule, min(int(b) * granule, num_docs)
        out.append(ShardSpec(index=i, start=start, count=stop - start, offset=offsets[int(a)]))
    return tuple(out)


def plan(
    path: Path | str,
    split: str,
    relevance_level: int,
    *,
    shards: int,
    checkpoint: Path | str | None = None,
    probe: bool = False,
) -> DistributedHeldout:
    """Read a held-out set's queries and qrels, stream its corpus, and split it into shards.

    ``checkpoint`` (precomputed embeddings): shard offsets are into its ``corpus_ids.txt``.
    ``probe``: also read the documents the ``auto`` precision probe encodes.
    """
    root = Path(path)
    if not root.is_dir():
        raise HeldoutError("held-out directory not found (expected the BEIR layout)", path=root)
    query_ids, query_texts, qrels, excluded, judged_line = _queries_and_qrels(
        root, split, relevance_level
    )
    corpus = root / CORPUS.name
    id_file = None if checkpoint is None else Path(checkpoint) / EMBEDDINGS_DIR / "corpus_ids.txt"
    num_docs, positions, offsets, granule = _scan(corpus, set(judged_line), id_file)
    missing = [d for d in judged_line if d not in positions]
    if missing:
        raise HeldoutError(
            f"corpus id {missing[0]!r} is not in corpus.jsonl",
            path=root / "qrels" / f"{split}.tsv",
            line=judged_line[missing[0]],
            field="corpus-id",
        )
    probe_ids: list[str] = []
    probe_titles: list[str] = []
    probe_bodies: list[str] = []
    if probe:
        # The positions the local probe picks: probe_sample over the corpus, by index.
        for pick in probe_sample(cast(Sequence[str], range(num_docs)), PROBE_TEXTS):
            pos = int(pick)
            g = pos // granule
            ids, titles, bodies = read_documents(
                corpus, offsets[g], pos - g * granule + 1, g * granule
            )
            probe_ids.append(ids[-1])
            probe_titles.append(titles[-1])
            probe_bodies.append(bodies[-1])
    query_side = HeldoutSet(
        name=root.name,
        path=root,
        split=split,
        relevance_level=relevance_level,
        corpus_ids=probe_ids,
        corpus_titles=probe_titles,
        corpus_texts=[document_text(t, b) for t, b in zip(probe_titles, probe_bodies, strict=True)],
        query_ids=query_ids,
        query_texts=query_texts,
        qrels=qrels,
        excluded_query_ids=excluded,
    )
    return DistributedHeldout(
        query_side=query_side,
        num_docs=num_docs,
        doc_position=JudgedPositions(positions, num_docs),
        shards=_shards(num_docs, offsets, granule, shards),
    )
