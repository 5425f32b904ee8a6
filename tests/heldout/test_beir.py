"""The one BEIR reader: corpus, queries, qrels and the streaming field reader, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recallwatch.errors import HeldoutError, InputError
from recallwatch.heldout.beir import (
    document_text,
    read_corpus,
    read_jsonl_objects,
    read_qrels,
    read_queries,
    stream_fields,
)


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_read_corpus_keeps_file_order_titles_and_bodies(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Alpha", "text": "first"},
            {"_id": 7, "title": None, "text": "second"},
            {"_id": "d3", "text": "third"},
        ],
    )
    corpus = read_corpus(path)
    assert corpus.ids == ["d1", "7", "d3"]
    assert corpus.titles == ["Alpha", "", ""]
    assert corpus.bodies == ["first", "second", "third"]
    assert corpus.document_texts() == ["Alpha first", "second", "third"]
    assert document_text("", " x ") == "x"


def test_read_queries_in_file_order(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "queries.jsonl", [{"_id": "q2", "text": "b"}, {"_id": "q1", "text": "a"}]
    )
    assert list(read_queries(path).items()) == [("q2", "b"), ("q1", "a")]


BAD_JSONL = [
    pytest.param(
        "queries.jsonl",
        b'{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n{"_id": "q1", "text": "c"}\n',
        "queries.jsonl, line 3, field '_id': duplicate query id 'q1' (first on line 1)",
        id="duplicate-query-id",
    ),
    pytest.param(
        "corpus.jsonl",
        b'{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n',
        "corpus.jsonl, line 2, field '_id': duplicate document id 'd1' (first on line 1)",
        id="duplicate-doc-id",
    ),
    pytest.param(
        "corpus.jsonl",
        b'{"_id": "d1", "text": "a"}\n{"_id": "d2"\n',
        "corpus.jsonl, line 2: not valid JSON",
        id="bad-json",
    ),
    pytest.param(
        "queries.jsonl",
        b'"q1"\n',
        "queries.jsonl, line 1: expected a JSON object, got str",
        id="not-an-object",
    ),
    pytest.param(
        "corpus.jsonl",
        b'{"_id": "d1", "text": "\xff"}\n',
        "corpus.jsonl, line 1: not valid UTF-8",
        id="invalid-utf8",
    ),
    pytest.param(
        "queries.jsonl",
        b'{"_id": true, "text": "a"}\n',
        "queries.jsonl, line 1, field '_id': missing or non-string id",
        id="bool-id",
    ),
    pytest.param(
        "queries.jsonl",
        b'{"_id": "", "text": "a"}\n',
        "queries.jsonl, line 1, field '_id': empty id",
        id="empty-id",
    ),
    pytest.param(
        "corpus.jsonl",
        b'{"_id": "d1", "title": 3, "text": "a"}\n',
        "corpus.jsonl, line 1, field 'title': expected a string, got int",
        id="title-not-string",
    ),
    pytest.param(
        "queries.jsonl",
        b'{"_id": "q1", "text": ["a"]}\n',
        "queries.jsonl, line 1, field 'text': expected a string, got list",
        id="text-not-string",
    ),
    pytest.param(
        "corpus.jsonl",
        b"\n  \n",
        "corpus.jsonl: the corpus is empty",
        id="empty-corpus",
    ),
    pytest.param(
        "queries.jsonl",
        b"",
        "queries.jsonl: the query file is empty",
        id="empty-queries",
    ),
]


def _read(path: Path) -> object:
    return read_queries(path) if path.name == "queries.jsonl" else read_corpus(path)


@pytest.mark.parametrize(("name", "content", "message"), BAD_JSONL)
def test_bad_jsonl_names_file_line_and_field(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HeldoutError) as info:
        _read(path)
    assert message in str(info.value)
    assert isinstance(info.value, InputError)
    assert info.value.path == path


@pytest.mark.parametrize(("name", "content", "message"), BAD_JSONL)
def test_stream_fields_validates_every_line_it_reads(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HeldoutError) as info:
        stream_fields(path, "text")
    assert message in str(info.value)


def test_duplicate_query_id_names_line_and_first_line(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "a"}\n\n{"_id": "q1", "text": "b"}\n', encoding="utf-8")
    with pytest.raises(HeldoutError) as info:
        read_queries(path)
    assert (info.value.path, info.value.line, info.value.field) == (path, 3, "_id")
    assert "first on line 1" in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HeldoutError, match=r"nope.jsonl: file not found"):
        list(read_jsonl_objects(tmp_path / "nope.jsonl"))
    with pytest.raises(HeldoutError, match=r"test.tsv: qrels file not found"):
        read_qrels(tmp_path / "test.tsv")


def test_stream_fields_reads_wanted_ids_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(
        b'{"_id": "d1", "title": "One", "text": "first"}\n'
        b'{"_id": "d2", "title": "", "text": "second"}\n'
        b'{"_id": "d3", "title": "Three", "text": "third"}\n'
        b"not json: never read, the wanted ids are found before it\n"
    )
    assert stream_fields(path, "title", {"d1", "d3"}) == {"d1": "One", "d3": "Three"}
    assert stream_fields(path, "title", ["d2"], fallback="text") == {"d2": "second"}
    assert stream_fields(path, "title", ["d2"]) == {"d2": ""}
    assert stream_fields(path, "title", set()) == {}
    with pytest.raises(HeldoutError, match=r"corpus.jsonl, line 4: not valid JSON"):
        stream_fields(path, "title", {"d1", "absent"})


def test_stream_fields_whole_file_and_query_schema(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "a"}, {"_id": 2, "text": "b"}])
    assert stream_fields(path, "text") == {"q1": "a", "2": "b"}
    bad = tmp_path / "bad" / "queries.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"_id": "q1"}\n', encoding="utf-8")
    with pytest.raises(
        HeldoutError, match=r"line 1, field 'text': expected a string, got NoneType"
    ):
        stream_fields(bad, "text", {"q1"})


def test_read_qrels_graded_with_crlf(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2.0\r\n", encoding="utf-8")
    assert read_qrels(path) == {"q1": {"d1": (1, 2), "d2": (2, 3)}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"q1\td1\t1\n\t\t\n", r"test.tsv, line 2: empty query-id or corpus-id"),
        (b"q1\td1\t1\n \t \t \n", r"test.tsv, line 2: empty query-id or corpus-id"),
        (b"q1\td1\t1\n\t\n", r"test.tsv, line 2: expected 3 tab-separated columns"),
        (
            b"q1\td1\t1\nq2\td\xff2\t1\n",
            r"test.tsv, line 2: not valid UTF-8 \(byte 4 of the line\)",
        ),
    ],
)
def test_bad_qrels_lines_are_named(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "test.tsv"
    path.write_bytes(body)
    with pytest.raises(HeldoutError, match=message):
        read_qrels(path)


def test_blank_qrels_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_bytes(b"q1\td1\t1\n\n  \nq1\td2\t0\n")
    assert read_qrels(path) == {"q1": {"d1": (1, 1), "d2": (0, 4)}}
