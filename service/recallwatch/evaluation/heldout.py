"""Load a clean held-out set in the BEIR layout.

A held-out directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``;
CRLF line ends are tolerated). Document text is ``title + " " + text``, stripped, as BEIR and
sentence-transformers' ``InformationRetrievalEvaluator`` build it.

Relevance is graded: a pair is relevant when ``score >= relevance_level``. Queries of the split
with no relevant document are excluded from evaluation and counted, as trec_eval and
sentence-transformers do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from recallwatch.errors import HeldoutError

__all__ = ["HeldoutSet", "document_text", "load_heldout", "read_jsonl_objects", "read_qrels"]


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


def document_text(title: str, text: str) -> str:
    """Join a document's title and text the way BEIR does."""
    return f"{title} {text}".strip()


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSONL file."""
    try:
        fh = path.open("rb")
    except FileNotFoundError as exc:
        raise HeldoutError("file not found", path=path) from exc
    with fh:
        for lineno, raw_bytes in enumerate(fh, start=1):
            try:
                line = raw_bytes.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise HeldoutError(
                    f"not valid UTF-8 (byte {exc.start} of the line)", path=path, line=lineno
                ) from exc
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HeldoutError(
                    f"not valid JSON ({exc.msg} at column {exc.colno})", path=path, line=lineno
                ) from exc
            if not isinstance(obj, dict):
                raise HeldoutError(
                    f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno
                )
            yield lineno, obj


def _id_of(obj: dict[str, Any], path: Path, lineno: int) -> str:
    value = obj.get("_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise HeldoutError(
            "missing or non-string id; each line needs a string '_id'",
            path=path,
            line=lineno,
            field="_id",
        )
    ident = str(value)
    if not ident:
        raise HeldoutError("empty id", path=path, line=lineno, field="_id")
    return ident


def _text_of(obj: dict[str, Any], key: str, path: Path, lineno: int, *, required: bool) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise HeldoutError(
            f"expected a string, got {type(value).__name__}", path=path, line=lineno, field=key
        )
    return value


def _load_corpus(path: Path) -> tuple[list[str], list[str], list[str]]:
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, obj in read_jsonl_objects(path):
        ident = _id_of(obj, path, lineno)
        if ident in seen:
            raise HeldoutError(
                f"duplicate document id {ident!r} (first on line {seen[ident]})",
                path=path,
                line=lineno,
                field="_id",
            )
        seen[ident] = lineno
        title = _text_of(obj, "title", path, lineno, required=False)
        text = _text_of(obj, "text", path, lineno, required=True)
        ids.append(ident)
        titles.append(title)
        texts.append(document_text(title, text))
    if not ids:
        raise HeldoutError("the corpus is empty; it needs one JSON document per line", path=path)
    return ids, titles, texts


def _load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, obj in read_jsonl_objects(path):
        ident = _id_of(obj, path, lineno)
        if ident in queries:
            raise HeldoutError(
                f"duplicate query id {ident!r} (first on line {lines[ident]})",
                path=path,
                line=lineno,
                field="_id",
            )
        lines[ident] = lineno
        queries[ident] = _text_of(obj, "text", path, lineno, required=True)
    if not queries:
        raise HeldoutError("the query file is empty; it needs one JSON query per line", path=path)
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Read a BEIR qrels TSV into query id -> doc id -> (score, line number)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise HeldoutError("qrels file not found", path=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeldoutError(f"not valid UTF-8 (byte {exc.start})", path=path) from exc
    qrels: dict[str, dict[str, tuple[int, int]]] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        if lineno == 1 and cols and cols[0].strip().lower() in {"query-id", "query_id", "qid"}:
            continue
        if len(cols) != 3:
            raise HeldoutError(
                f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}",
                path=path,
                line=lineno,
            )
        qid, did, score_s = (c.strip() for c in cols)
        if not qid or not did:
            raise HeldoutError("empty query-id or corpus-id", path=path, line=lineno)
        try:
            score = int(score_s)
        except ValueError:
            try:
                as_float = float(score_s)
            except ValueError:
                as_float = float("nan")
            if not as_float.is_integer():
                raise HeldoutError(
                    f"score {score_s!r} is not an integer relevance grade",
                    path=path,
                    line=lineno,
                    field="score",
                ) from None
            score = int(as_float)
        per_query = qrels.setdefault(qid, {})
        if did in per_query:
            raise HeldoutError(
                f"duplicate judgement for ({qid!r}, {did!r}) (first on line {per_query[did][1]})",
                path=path,
                line=lineno,
            )
        per_query[did] = (score, lineno)
    if not qrels:
        raise HeldoutError("the qrels file has no judgements", path=path)
    return qrels


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

    corpus_ids, titles, texts = _load_corpus(root / "corpus.jsonl")
    queries_path = root / "queries.jsonl"
    queries = _load_queries(queries_path)
    raw_qrels = read_qrels(qrels_path)

    doc_set = set(corpus_ids)
    for qid, docs in raw_qrels.items():
        for did, (_, lineno) in docs.items():
            if qid not in queries:
                raise HeldoutError(
                    f"query id {qid!r} is not in {queries_path.name}",
                    path=qrels_path,
                    line=lineno,
                    field="query-id",
                )
            if did not in doc_set:
                raise HeldoutError(
                    f"corpus id {did!r} is not in corpus.jsonl",
                    path=qrels_path,
                    line=lineno,
                    field="corpus-id",
                )

    query_ids: list[str] = []
    excluded: list[str] = []
    qrels: dict[str, dict[str, int]] = {}
    # Keep the order of queries.jsonl so results are deterministic and easy to diff.
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
    return HeldoutSet(
        name=root.name,
        path=root,
        split=split,
        relevance_level=relevance_level,
        corpus_ids=corpus_ids,
        corpus_titles=titles,
        corpus_texts=texts,
        query_ids=query_ids,
        query_texts=[queries[q] for q in query_ids],
        qrels=qrels,
        excluded_query_ids=excluded,
    )
