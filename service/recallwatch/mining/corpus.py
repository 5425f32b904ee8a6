"""The corpus a mined set refers to: document and query texts by id, and text-to-id matching.

A corpus directory is the BEIR layout: ``corpus.jsonl`` (``_id``, ``title``, ``text``) and, where
the oracles need query texts, ``queries.jsonl`` (``_id``, ``text``), both read and validated by
:mod:`recallwatch.heldout.beir`. qrels are not needed here.

sentence-transformers' ``mine_hard_negatives`` writes texts, not ids. They are mapped back by
exact match after whitespace normalisation (runs of whitespace become one space, ends stripped),
against the document text as BEIR builds it (``title + " " + text``) and against the text alone,
since trainers build their corpus either way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from recallwatch.errors import HeldoutError
from recallwatch.heldout.beir import document_text, read_corpus, read_queries

__all__ = ["Corpus", "TextMatcher", "load_corpus", "normalize_text", "text_id"]


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return " ".join(text.split())


def text_id(text: str, prefix: str = "text") -> str:
    """A stable id for a text that has none (its normalised SHA-256, shortened)."""
    digest = hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]
    return f"{prefix}:{digest}"


@dataclass
class Corpus:
    """Documents (and queries, when present) of a BEIR directory, addressable by id."""

    path: Path
    doc_ids: list[str]
    doc_titles: list[str]
    doc_bodies: list[str]
    query_texts: dict[str, str] = field(default_factory=dict)
    _position: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._position = {d: i for i, d in enumerate(self.doc_ids)}

    def __len__(self) -> int:
        return len(self.doc_ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._position

    def position(self, doc_id: str) -> int:
        """Row of a document in the corpus (KeyError when unknown)."""
        return self._position[doc_id]

    def text(self, doc_id: str) -> str:
        """The document's text as BEIR builds it: title + " " + text."""
        i = self._position[doc_id]
        return document_text(self.doc_titles[i], self.doc_bodies[i])


def load_corpus(path: Path | str) -> Corpus:
    """Load ``corpus.jsonl`` (required) and ``queries.jsonl`` (optional) of a BEIR directory.

    Both files are validated by :mod:`recallwatch.heldout.beir`, as the held-out loader validates
    them.
    """
    root = Path(path)
    if not root.is_dir():
        raise HeldoutError("corpus directory not found (expected the BEIR layout)", path=root)
    corpus = read_corpus(root / "corpus.jsonl")
    queries_path = root / "queries.jsonl"
    queries = read_queries(queries_path) if queries_path.is_file() else {}
    return Corpus(root, corpus.ids, corpus.titles, corpus.bodies, queries)


class TextMatcher:
    """Map document and query texts back to ids by exact match after whitespace normalisation."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._docs: dict[str, str] = {}
        #: Normalised texts shared by several documents: matched to the first, and counted.
        self.ambiguous: set[str] = set()
        full: dict[str, str] = {}
        for i, doc_id in enumerate(corpus.doc_ids):
            key = normalize_text(document_text(corpus.doc_titles[i], corpus.doc_bodies[i]))
            if key in full:
                self.ambiguous.add(key)
            else:
                full[key] = doc_id
        # Text without the title is tried second: it must not shadow a full-text match.
        body_only: dict[str, str] = {}
        for i, doc_id in enumerate(corpus.doc_ids):
            key = normalize_text(corpus.doc_bodies[i])
            if key not in full:
                body_only.setdefault(key, doc_id)
        self._docs = {**body_only, **full}
        self._queries: dict[str, str] = {}
        for qid, text in corpus.query_texts.items():
            self._queries.setdefault(normalize_text(text), qid)

    def document(self, text: str) -> str | None:
        """The id of the document with this text, or None."""
        return self._docs.get(normalize_text(text))

    def query(self, text: str) -> str | None:
        """The id of the query with this text in ``queries.jsonl``, or None."""
        return self._queries.get(normalize_text(text))
