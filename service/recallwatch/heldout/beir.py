"""Read the BEIR layout, validated one way for every caller.

A BEIR directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``;
CRLF line ends are tolerated). Document text is ``title + " " + text``, stripped, as BEIR and
sentence-transformers' ``InformationRetrievalEvaluator`` build it.

Every reader here applies the same rules, and every bad input raises
:class:`~recallwatch.errors.HeldoutError` naming the file, the line and the field:

- each line is valid UTF-8 and one JSON object (blank lines are skipped);
- ``_id`` is a non-empty string (an integer is accepted and read as its decimal string), and no
  id appears twice in one file (the message names the line of the first occurrence);
- ``text`` is a string; ``title`` (corpus only) is a string or absent/null;
- a corpus or query file holds at least one line.

Callers: :func:`recallwatch.heldout.sets.load_heldout` (the held-out set),
:func:`recallwatch.mining.corpus.load_corpus` (the corpus a mined set refers to) and the alert
text index (:func:`stream_fields`, which reads only as far as it needs); the Ray plan reads corpus
shards line by line with :func:`id_of` and :func:`string_of`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recallwatch.errors import HeldoutError

__all__ = [
    "CORPUS",
    "QUERIES",
    "BeirCorpus",
    "BeirFile",
    "document_text",
    "id_of",
    "read_corpus",
    "read_jsonl_objects",
    "read_qrels",
    "read_queries",
    "stream_fields",
    "string_of",
]


@dataclass(frozen=True)
class BeirFile:
    """The schema of one BEIR JSONL file: what a line holds and what its records are called."""

    #: The file name inside a BEIR directory.
    name: str
    #: What one line is, for messages ("document", "query").
    noun: str
    #: Fields that must be strings.
    required: tuple[str, ...]
    #: Fields that are strings when present (absent or null reads as "").
    optional: tuple[str, ...]
    #: The message for a file without a line.
    empty_message: str


CORPUS = BeirFile(
    name="corpus.jsonl",
    noun="document",
    required=("text",),
    optional=("title",),
    empty_message="the corpus is empty; it needs one JSON document per line",
)
QUERIES = BeirFile(
    name="queries.jsonl",
    noun="query",
    required=("text",),
    optional=(),
    empty_message="the query file is empty; it needs one JSON query per line",
)


@dataclass(frozen=True)
class BeirCorpus:
    """The documents of a ``corpus.jsonl``, in file order."""

    ids: list[str]
    titles: list[str]
    #: The ``text`` field alone (see :meth:`document_texts` for the text BEIR embeds).
    bodies: list[str]

    def document_texts(self) -> list[str]:
        """Each document's text as BEIR embeds it (:func:`document_text` of title and body)."""
        return [document_text(t, b) for t, b in zip(self.titles, self.bodies, strict=True)]


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


def id_of(obj: dict[str, Any], path: Path, lineno: int) -> str:
    """The ``_id`` of a JSONL line's object as a non-empty string (line ``lineno`` of ``path``)."""
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


def string_of(obj: dict[str, Any], key: str, path: Path, lineno: int, *, required: bool) -> str:
    """The string field ``key`` of one JSONL line's object (``""`` when absent and not required)."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise HeldoutError(
            f"expected a string, got {type(value).__name__}", path=path, line=lineno, field=key
        )
    return value


def _records(
    path: Path, schema: BeirFile, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (id, field -> string) per line, validated by ``schema``; raise on an empty file.

    ``extra`` names more fields to read (strings when present). A caller that stops early has
    validated every line it read, and no more.
    """
    first_line: dict[str, int] = {}
    for lineno, obj in read_jsonl_objects(path):
        ident = id_of(obj, path, lineno)
        if ident in first_line:
            raise HeldoutError(
                f"duplicate {schema.noun} id {ident!r} (first on line {first_line[ident]})",
                path=path,
                line=lineno,
                field="_id",
            )
        first_line[ident] = lineno
        values: dict[str, str] = {}
        for key in schema.optional:
            values[key] = string_of(obj, key, path, lineno, required=False)
        for key in schema.required:
            values[key] = string_of(obj, key, path, lineno, required=True)
        for key in extra:
            if key not in values:
                values[key] = string_of(obj, key, path, lineno, required=False)
        yield ident, values
    if not first_line:
        raise HeldoutError(schema.empty_message, path=path)


def read_corpus(path: Path) -> BeirCorpus:
    """Read and validate a ``corpus.jsonl``."""
    ids: list[str] = []
    titles: list[str] = []
    bodies: list[str] = []
    for ident, values in _records(path, CORPUS):
        ids.append(ident)
        titles.append(values["title"])
        bodies.append(values["text"])
    return BeirCorpus(ids, titles, bodies)


def read_queries(path: Path) -> dict[str, str]:
    """Read and validate a ``queries.jsonl`` into query id -> text, in file order."""
    return {ident: values["text"] for ident, values in _records(path, QUERIES)}


def stream_fields(
    path: Path,
    field: str,
    wanted_ids: Collection[str] | None = None,
    *,
    fallback: str | None = None,
) -> dict[str, str]:
    """Read one field of the lines whose id is wanted, stopping once every wanted id is found.

    The schema follows the file name (``queries.jsonl`` holds queries, anything else documents);
    each line read is validated like :func:`read_corpus` / :func:`read_queries` validate it.
    ``wanted_ids=None`` reads the whole file; an empty collection reads nothing. When the field
    is empty or absent and ``fallback`` names another field, that field's value is used instead
    (e.g. a document's ``text`` for a missing ``title``). Wanted ids not in the file are absent.
    """
    wanted = None if wanted_ids is None else set(wanted_ids)
    out: dict[str, str] = {}
    if wanted is not None and not wanted:
        return out
    schema = QUERIES if path.name == QUERIES.name else CORPUS
    extra = tuple(f for f in (field, fallback) if f is not None)
    for ident, values in _records(path, schema, extra):
        if wanted is not None and ident not in wanted:
            continue
        value = values[field]
        if not value and fallback is not None:
            value = values[fallback]
        out[ident] = value
        if wanted is not None and len(out) == len(wanted):
            break
    return out


def read_qrels(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Read a BEIR qrels TSV into query id -> doc id -> (score, line number)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise HeldoutError("qrels file not found", path=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1)
        raise HeldoutError(
            f"not valid UTF-8 (byte {column} of the line)", path=path, line=bad_line
        ) from exc
    qrels: dict[str, dict[str, tuple[int, int]]] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        # A blank line separates nothing; a line of tabs (three empty fields) is a bad record.
        if not line.strip() and "\t" not in line:
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
