"""Loading BEIR held-out sets: the happy path, graded relevance, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recallwatch.errors import HeldoutError, RecallwatchError
from recallwatch.heldout.sets import load_heldout

CORPUS = [
    {"_id": "d1", "title": "Alpha", "text": "first doc"},
    {"_id": "d2", "title": "", "text": "second doc"},
    {"_id": "d3", "text": "third doc"},
]
QUERIES = [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}, {"_id": "q3", "text": "3"}]
QRELS = "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\nq2\td3\t0\r\nq3\td3\t2\r\n"


def write_set(
    root: Path,
    corpus: str | None = None,
    queries: str | None = None,
    qrels: str | None = None,
    split: str = "test",
) -> Path:
    """Write a small BEIR directory, replacing any file given as text."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    default_corpus = "".join(json.dumps(d) + "\n" for d in CORPUS)
    default_queries = "".join(json.dumps(q) + "\n" for q in QUERIES)
    (root / "corpus.jsonl").write_text(default_corpus if corpus is None else corpus)
    (root / "queries.jsonl").write_text(default_queries if queries is None else queries)
    (root / "qrels" / f"{split}.tsv").write_text(QRELS if qrels is None else qrels)
    return root


def test_loads_beir_layout_with_crlf_and_graded_relevance(tmp_path: Path) -> None:
    hs = load_heldout(write_set(tmp_path), "test")
    assert hs.corpus_ids == ["d1", "d2", "d3"]
    assert hs.corpus_texts == ["Alpha first doc", "second doc", "third doc"]
    assert hs.query_ids == ["q1", "q3"]
    assert hs.query_texts == ["one", "3"]
    assert hs.qrels == {"q1": {"d1": 1, "d2": 2}, "q3": {"d3": 2}}
    assert hs.excluded_query_ids == ["q2"]
    assert hs.relevant("q1") == {"d1": 1, "d2": 2}


def test_relevance_level_raises_the_bar(tmp_path: Path) -> None:
    hs = load_heldout(write_set(tmp_path), "test", relevance_level=2)
    assert hs.query_ids == ["q1", "q3"]
    assert hs.relevant("q1") == {"d2": 2}


def test_relevance_level_nothing_relevant(tmp_path: Path) -> None:
    write_set(tmp_path)
    with pytest.raises(
        HeldoutError, match="no query of split 'test' has a document with score >= 3"
    ):
        load_heldout(tmp_path, "test", relevance_level=3)


def test_real_scifact_counts(scifact_dir: Path) -> None:
    hs = load_heldout(scifact_dir, "test")
    assert (hs.num_docs, hs.num_queries, len(hs.excluded_query_ids)) == (5183, 300, 0)
    assert sum(len(v) for v in hs.qrels.values()) == 339
    train = load_heldout(scifact_dir, "train")
    assert train.num_queries == 809


BAD_CASES = [
    pytest.param(
        {"corpus": '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n'},
        "corpus.jsonl, line 2, field '_id': duplicate document id 'd1' (first on line 1)",
        id="duplicate-doc-id",
    ),
    pytest.param(
        {"queries": '{"_id": "q1", "text": "a"}\n\n{"_id": "q1", "text": "b"}\n'},
        "queries.jsonl, line 3, field '_id': duplicate query id 'q1' (first on line 1)",
        id="duplicate-query-id",
    ),
    pytest.param(
        {"corpus": '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"\n'},
        "corpus.jsonl, line 2: not valid JSON",
        id="bad-json-line",
    ),
    pytest.param(
        {"corpus": '["d1", "a"]\n'},
        "corpus.jsonl, line 1: expected a JSON object, got list",
        id="json-not-object",
    ),
    pytest.param(
        {"corpus": '{"_id": "d1"}\n'},
        "corpus.jsonl, line 1, field 'text': expected a string, got NoneType",
        id="missing-text",
    ),
    pytest.param(
        {"queries": '{"text": "no id"}\n'},
        "queries.jsonl, line 1, field '_id': missing or non-string id",
        id="missing-id",
    ),
    pytest.param({"corpus": ""}, "corpus.jsonl: the corpus is empty", id="empty-corpus"),
    pytest.param({"queries": "\n\n"}, "queries.jsonl: the query file is empty", id="empty-queries"),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\n"},
        "test.tsv: the qrels file has no judgements",
        id="empty-qrels",
    ),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1 d2 1\n"},
        "test.tsv, line 3: expected 3 tab-separated columns (query-id, corpus-id, score), got 1",
        id="wrong-column-count",
    ),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\thigh\n"},
        "test.tsv, line 2, field 'score': score 'high' is not an integer relevance grade",
        id="non-integer-score",
    ),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n"},
        "test.tsv, line 3, field 'query-id': query id 'q9' is not in queries.jsonl",
        id="unknown-query",
    ),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tzz\t1\n"},
        "test.tsv, line 3, field 'corpus-id': corpus id 'zz' is not in corpus.jsonl",
        id="unknown-doc",
    ),
    pytest.param(
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n"},
        "test.tsv, line 3: duplicate judgement for ('q1', 'd1') (first on line 2)",
        id="duplicate-judgement",
    ),
]


@pytest.mark.parametrize(("files", "message"), BAD_CASES)
def test_bad_input_names_file_and_line(tmp_path: Path, files: dict[str, str], message: str) -> None:
    write_set(tmp_path, **files)
    with pytest.raises(HeldoutError) as info:
        load_heldout(tmp_path, "test")
    assert message in str(info.value)
    assert isinstance(info.value, RecallwatchError)
    assert isinstance(info.value, ValueError)


def test_missing_split_lists_available_splits(tmp_path: Path) -> None:
    write_set(tmp_path, split="dev")
    with pytest.raises(HeldoutError, match=r"no qrels for split 'test' \(available splits: dev\)"):
        load_heldout(tmp_path, "test")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(HeldoutError, match="held-out directory not found"):
        load_heldout(tmp_path / "nope", "test")


def test_non_utf8_qrels(tmp_path: Path) -> None:
    write_set(tmp_path)
    (tmp_path / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\nq1\td\xff1\t1\n")
    with pytest.raises(
        HeldoutError, match=r"test.tsv, line 2: not valid UTF-8 \(byte 4 of the line"
    ):
        load_heldout(tmp_path, "test")


def test_non_utf8_corpus_line(tmp_path: Path) -> None:
    write_set(tmp_path)
    (tmp_path / "corpus.jsonl").write_bytes(
        b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "\xff"}\n'
    )
    with pytest.raises(HeldoutError, match=r"corpus.jsonl, line 2: not valid UTF-8"):
        load_heldout(tmp_path, "test")


def test_duplicate_query_id_names_file_line_and_field(tmp_path: Path) -> None:
    write_set(
        tmp_path,
        queries='{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n'
        '{"_id": "q1", "text": "c"}\n',
    )
    with pytest.raises(HeldoutError) as info:
        load_heldout(tmp_path, "test")
    assert (info.value.path, info.value.line, info.value.field) == (
        tmp_path / "queries.jsonl",
        3,
        "_id",
    )
    assert "duplicate query id 'q1' (first on line 1)" in str(info.value)
