"""Load a clean held-out set in the BEIR layout.

A held-out directory holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``, read and
validated by :mod:`recallwatch.heldout.beir`; this module checks that the three agree (every
judged query and document exists) and keeps the queries of one split. Document text is
``title + " " + text``, stripped, as BEIR and sentence-transformers'
``InformationRetrievalEvaluator`` build it.

Relevance is graded: a pair is relevant when ``score >= relevance_level``. Queries of the split
with no relevant document are excluded from evaluation and counted, as trec_eval and
sentence-transformers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from recallwatch.errors import HeldoutError
from recallwatch.heldout.beir import read_corpus, read_qrels, read_queries

__all__ = ["HeldoutSet", "evaluated_queries", "judged_documents", "load_heldout"]


@dataclass(frozen=True)
class HeldoutSet:
    """A clean held-out set: the corpus, the evaluated queries and their graded judgements."""

    name: str
    path: Path
    split: str
    relevance_level: int
    corpus_ids: list[str]
    corpus_titles: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    #: query id -> doc id -> graded score, for evaluated queries only (all grades, 0 included).
    qrels: dict[str, dict[str, int]]
    #: Queries of the split that have no document with score >= relevance_level.
    excluded_query_ids: list[str] = field(default_factory=list)

    @cached_property
    def doc_position(self) -> dict[str, int]:
        """Corpus position of each document id (built once, shared by every evaluation)."""
        return {d: i for i, d in enumerate(self.corpus_ids)}

    @property
    def num_docs(self) -> int:
        """Number of documents in the corpus."""
        return len(self.corpus_ids)

    @property
    def num_queries(self) -> int:
        """Number of evaluated queries (those with at least one relevant document)."""
        return len(self.query_ids)

    def relevant(self, query_id: str) -> dict[str, int]:
        """Return the relevant documents of a query (score >= relevance_level)."""
        return {d: s for d, s in self.qrels[query_id].items() if s >= self.relevance_level}


def judged_documents(
    raw_qrels: Mapping[str, Mapping[str, tuple[int, int]]],
    queries: Mapping[str, str],
    *,
    queries_path: Path,
    qrels_path: Path,
) -> dict[str, int]:
    """Each judged document's first qrels line; a judged query missing from queries.jsonl is a
    ``HeldoutError`` naming its line."""
    judged: dict[str, int] = {}
    for qid, docs in raw_qrels.items():
        for did, (_, lineno) in docs.items():
            if qid not in queries:
                raise HeldoutError(
                    f"query id {qid!r} is not in {queries_path.name}",
                    path=qrels_path,
                    line=lineno,
                    field="query-id",
                )
            judged.setdefault(did, lineno)
    return judged


def evaluated_queries(
    queries: Mapping[str, str],
    raw_qrels: Mapping[str, Mapping[str, tuple[int, int]]],
    relevance_level: int,
    *,
    split: str,
    qrels_path: Path,
) -> tuple[list[str], dict[str, dict[str, int]], list[str]]:
    """The queries evaluated (a judged document with score >= ``relevance_level``), in the order
    of queries.jsonl so results are deterministic and easy to diff; their grades; the judged
    queries excluded (no relevant document). None evaluated is a ``HeldoutError``."""
    query_ids: list[str] = []
    excluded: list[str] = []
    qrels: dict[str, dict[str, int]] = {}
    for qid in queries:
        if qid not in raw_qrels:
            continue
        grades = {did: score for did, (score, _) in raw_qrels[qid].items()}
        if any(score >= relevance_level for score in grades.values()):
            query_ids.append(qid)
            qrels[qid] = grades
        else:
            excluded.append(qid)
    if not query_ids:
        raise HeldoutError(
            f"no query of split {split!r} has a document with score >= {relevance_level}",
            path=qrels_path,
        )
    return query_ids, qrels, excluded


def load_heldout(path: Path | str, split: str = "test", relevance_level: int = 1) -> HeldoutSet:
    """Load and validate a BEIR held-out directory for one qrels split."""
    root = Path(path)
    if not root.is_dir():
        raise HeldoutError("held-out directory not found (expected the BEIR layout)", path=root)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        hint = f"available splits: {', '.join(available)}" if available else "no qrels/*.tsv found"
        raise HeldoutError(f"no qrels for split {split!r} ({hint})", path=qrels_path)

    corpus = read_corpus(root / "corpus.jsonl")
    corpus_ids = corpus.ids
    queries_path = root / "queries.jsonl"
    queries = read_queries(queries_path)
    raw_qrels = read_qrels(qrels_path)

    doc_set = set(corpus_ids)
    judged = judged_documents(raw_qrels, queries, queries_path=queries_path, qrels_path=qrels_path)
    for did, lineno in judged.items():
        if did not in doc_set:
            raise HeldoutError(
                f"corpus id {did!r} is not in corpus.jsonl",
                path=qrels_path,
                line=lineno,
                field="corpus-id",
            )

    query_ids, qrels, excluded = evaluated_queries(
        queries, raw_qrels, relevance_level, split=split, qrels_path=qrels_path
    )
    return HeldoutSet(
        name=root.name,
        path=root,
        split=split,
        relevance_level=relevance_level,
        corpus_ids=corpus_ids,
        corpus_titles=corpus.titles,
        corpus_texts=corpus.document_texts(),
        query_ids=query_ids,
        query_texts=[queries[q] for q in query_ids],
        qrels=qrels,
        excluded_query_ids=excluded,
    )
