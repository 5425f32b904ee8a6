"""The mined set: queries, their labelled positives and the negatives mined for them.

The canonical (recallwatch) format is JSONL, one line per query::

    {"query_id": "q1", "positive_ids": ["d7"], "positive_scores": [0.91],
     "negatives": [{"doc_id": "d3", "rank": 1, "score": 0.83}, ...]}

``rank`` is the mining rank among non-positive candidates (1 = the candidate the miner ranked
highest; sentence-transformers' ``range_min`` skips ranks 1..range_min). ``score`` is the miner's
similarity of the query and the negative, ``positive_scores`` the same for each positive (aligned
with ``positive_ids``); both are optional but the margin rules need them. An optional ``query``
carries the query text when ``queries.jsonl`` lacks it. A negative may carry a ``weight`` (written
by ``recallwatch filter --strategy soft``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.errors import InputError
from recallwatch.heldout.beir import read_jsonl_objects
from recallwatch.mining.corpus import Corpus

__all__ = [
    "ImportReport",
    "MinedQuery",
    "MinedSet",
    "Negative",
    "NegativeTable",
    "read_recallwatch_jsonl",
    "write_recallwatch_jsonl",
]


@dataclass(frozen=True)
class Negative:
    """One mined negative of a query."""

    doc_id: str
    rank: int
    score: float | None = None
    weight: float | None = None


@dataclass(frozen=True)
class MinedQuery:
    """A query with its labelled positives and mined negatives."""

    query_id: str
    positive_ids: tuple[str, ...]
    negatives: tuple[Negative, ...]
    positive_scores: tuple[float | None, ...] = ()
    query_text: str | None = None
    #: Where the query came from (line of the JSONL, first row of an imported table).
    line: int | None = None
    #: Whether the source line carried ``query_text`` itself (a ``query`` field), rather than it
    #: being looked up in queries.jsonl: written back by ``write_recallwatch_jsonl`` then.
    query_in_source: bool = False

    @property
    def positive_score(self) -> float | None:
        """The lowest known positive score, the one sentence-transformers' margins use."""
        known = [s for s in self.positive_scores if s is not None]
        return min(known) if known else None


@dataclass
class ImportReport:
    """What happened while reading a mined set: counts, unmatched texts, assumptions made."""

    rows: int = 0
    queries: int = 0
    negatives: int = 0
    unmatched_negatives: int = 0
    unmatched_positives: int = 0
    #: Queries left without a positive (all unmatched): their negatives are excluded.
    queries_without_positive: int = 0
    excluded_negatives: int = 0
    #: Anchors not found in queries.jsonl (given a stable ``anchor:`` id instead).
    anchors_without_query_id: int = 0
    ambiguous_texts: int = 0
    #: (line, text) of the first few unmatched texts, for messages.
    unmatched_examples: list[tuple[int, str]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "rows": self.rows,
            "queries": self.queries,
            "negatives": self.negatives,
            "unmatched_negatives": self.unmatched_negatives,
            "unmatched_positives": self.unmatched_positives,
            "queries_without_positive": self.queries_without_positive,
            "excluded_negatives": self.excluded_negatives,
            "anchors_without_query_id": self.anchors_without_query_id,
            "ambiguous_texts": self.ambiguous_texts,
            "unmatched_examples": [{"line": ln, "text": t} for ln, t in self.unmatched_examples],
            "assumptions": list(self.assumptions),
        }


@dataclass(frozen=True)
class NegativeTable:
    """Every negative of a mined set as flat arrays (one row per negative), for sampling."""

    query_index: npt.NDArray[np.int64]
    negative_index: npt.NDArray[np.int64]
    rank: npt.NDArray[np.int64]
    #: Miner's score of (query, negative); NaN where unknown.
    score: npt.NDArray[np.float64]
    #: Miner's lowest positive score of the query; NaN where unknown.
    positive_score: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.rank.shape[0])

    @property
    def has_scores(self) -> bool:
        """Whether every negative has both its own and its positive's score."""
        return bool(len(self)) and bool(
            np.isfinite(self.score).all() and np.isfinite(self.positive_score).all()
        )


@dataclass
class MinedSet:
    """A mined set in canonical form, with where it came from."""

    queries: list[MinedQuery]
    path: Path
    #: "recallwatch" or a sentence-transformers output format ("triplet", "n-tuple", ...).
    format: str
    report: ImportReport = field(default_factory=ImportReport)
    #: Format-specific data a writer needs to write the set back in its own format.
    source: Any = None

    def table(self) -> NegativeTable:
        """Flatten the negatives into a ``NegativeTable``."""
        counts = [len(q.negatives) for q in self.queries]
        total = sum(counts)
        qi = np.repeat(np.arange(len(self.queries), dtype=np.int64), counts)
        ni = (
            np.concatenate([np.arange(c, dtype=np.int64) for c in counts])
            if total
            else (np.zeros(0, dtype=np.int64))
        )
        rank = np.fromiter((n.rank for q in self.queries for n in q.negatives), np.int64, total)
        score = np.fromiter(
            (math.nan if n.score is None else n.score for q in self.queries for n in q.negatives),
            np.float64,
            total,
        )
        pos = np.array(
            [math.nan if q.positive_score is None else q.positive_score for q in self.queries],
            dtype=np.float64,
        )
        return NegativeTable(qi, ni, rank, score, pos[qi] if total else pos[:0])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _parse_line(obj: dict[str, Any], path: Path, line: int, corpus: Corpus | None) -> MinedQuery:
    def err(message: str, fld: str) -> InputError:
        return InputError(message, path=path, line=line, field=fld)

    qid = obj.get("query_id")
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid:
        raise err("missing or empty 'query_id' (a string)", "query_id")
    text = obj.get("query")
    if text is not None and not isinstance(text, str):
        raise err("expected the query text as a string", "query")
    in_source = text is not None
    if text is None and corpus is not None:
        text = corpus.query_texts.get(qid)
    pos = obj.get("positive_ids")
    if not isinstance(pos, list) or not pos or not all(isinstance(p, str) and p for p in pos):
        raise err("expected a non-empty list of document id strings", "positive_ids")
    if len(set(pos)) != len(pos):
        raise err("a positive id is listed twice", "positive_ids")
    raw_scores = obj.get("positive_scores")
    scores: tuple[float | None, ...] = ()
    if raw_scores is not None:
        if not isinstance(raw_scores, list) or len(raw_scores) != len(pos):
            raise err(f"expected a list of {len(pos)} numbers, one per positive", "positive_scores")
        scores = tuple(_number(s) for s in raw_scores)
        if any(s is None for s in scores):
            raise err("positive scores must be finite numbers", "positive_scores")
    if corpus is not None:
        for j, p in enumerate(pos):
            if p not in corpus:
                raise err(
                    f"unknown document id {p!r}: not in {corpus.path}/corpus.jsonl",
                    f"positive_ids[{j}]",
                )
    negs = obj.get("negatives")
    if not isinstance(negs, list):
        raise err("expected a list of {doc_id, rank, score} objects", "negatives")
    out: list[Negative] = []
    seen: set[str] = set()
    positives = set(pos)
    for j, n in enumerate(negs):
        where = f"negatives[{j}]"
        if not isinstance(n, dict):
            raise err("expected an object with doc_id, rank and score", where)
        did = n.get("doc_id")
        if not isinstance(did, str) or not did:
            raise err("missing or empty 'doc_id'", f"{where}.doc_id")
        if corpus is not None and did not in corpus:
            raise err(
                f"unknown document id {did!r}: not in {corpus.path}/corpus.jsonl", f"{where}.doc_id"
            )
        if did in positives:
            raise err(f"{did!r} is listed both as a positive and as a negative", f"{where}.doc_id")
        if did in seen:
            raise err(f"negative {did!r} is listed twice", f"{where}.doc_id")
        seen.add(did)
        rank = n.get("rank", j + 1)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise err(f"rank must be a positive integer, got {rank!r}", f"{where}.rank")
        score = n.get("score")
        if score is not None and _number(score) is None:
            raise err(f"score must be a finite number, got {score!r}", f"{where}.score")
        weight = n.get("weight")
        if weight is not None and (_number(weight) is None or not 0 <= float(weight) <= 1):
            raise err(f"weight must be a number in [0, 1], got {weight!r}", f"{where}.weight")
        out.append(Negative(did, rank, _number(score), _number(weight)))
    return MinedQuery(qid, tuple(pos), tuple(out), scores, text, line, in_source)


def read_recallwatch_jsonl(path: Path | str, corpus: Corpus | None = None) -> MinedSet:
    """Read and validate a recallwatch JSONL mined set; ids are checked against ``corpus``."""
    p = Path(path)
    queries: list[MinedQuery] = []
    lines: dict[str, int] = {}
    rows = 0
    for line, obj in read_jsonl_objects(p):
        rows += 1
        q = _parse_line(obj, p, line, corpus)
        if q.query_id in lines:
            raise InputError(
                f"query {q.query_id!r} appears twice (first on line {lines[q.query_id]})",
                path=p,
                line=line,
                field="query_id",
            )
        lines[q.query_id] = line
        queries.append(q)
    if not queries:
        raise InputError("the mined set is empty: no query line", path=p)
    report = ImportReport(
        rows=rows, queries=len(queries), negatives=sum(len(q.negatives) for q in queries)
    )
    return MinedSet(queries, p, "recallwatch", report)


def _query_line(
    q: MinedQuery, keep: Sequence[bool] | None, weights: Sequence[float] | None
) -> dict[str, Any]:
    negatives: list[dict[str, Any]] = []
    for j, n in enumerate(q.negatives):
        if keep is not None and not keep[j]:
            continue
        item: dict[str, Any] = {"doc_id": n.doc_id, "rank": n.rank}
        if n.score is not None:
            item["score"] = n.score
        w = weights[j] if weights is not None else n.weight
        if w is not None:
            item["weight"] = round(float(w), 6)
        negatives.append(item)
    obj: dict[str, Any] = {"query_id": q.query_id}
    if q.query_in_source and q.query_text is not None:
        obj["query"] = q.query_text
    obj["positive_ids"] = list(q.positive_ids)
    if q.positive_scores:
        obj["positive_scores"] = list(q.positive_scores)
    obj["negatives"] = negatives
    return obj


def write_recallwatch_jsonl(
    mined: MinedSet,
    path: Path | str,
    *,
    keep: Iterable[Sequence[bool]] | None = None,
    weights: Iterable[Sequence[float]] | None = None,
) -> None:
    """Write a mined set as recallwatch JSONL, keeping only ``keep`` negatives per query."""
    keeps = list(keep) if keep is not None else [None] * len(mined.queries)
    ws = list(weights) if weights is not None else [None] * len(mined.queries)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for q, k, w in zip(mined.queries, keeps, ws, strict=True):
            fh.write(json.dumps(_query_line(q, k, w), ensure_ascii=False) + "\n")
