"""The corpus a mined set refers to: loading (validated like the held-out set) and text matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from recallwatch.errors import HeldoutError
from recallwatch.heldout.sets import load_heldout
from recallwatch.mining.corpus import TextMatcher, load_corpus, normalize_text
from tests.helpers.mining import write_corpus


def test_text_matching_normalises_whitespace_and_titles(small_corpus: Path) -> None:
    matcher = TextMatcher(load_corpus(small_corpus))
    assert matcher.document("Dogs  Dogs are loyal companions\nof humans.") == "d2"
    assert matcher.document("Dogs are loyal companions of humans.") == "d2"  # text without title
    assert matcher.document("dogs are loyal companions of humans.") is None  # case matters
    assert matcher.query("  what are   cats ") == "q1"
    assert normalize_text(" a\t b\n") == "a b"


def _corpus_dir(root: Path, queries: str) -> Path:
    write_corpus(root)
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


def test_duplicate_query_id_is_rejected_naming_file_and_line(tmp_path: Path) -> None:
    root = _corpus_dir(
        tmp_path / "corpus",
        '{"_id": "q1", "text": "what are cats"}\n{"_id": "q2", "text": "dogs"}\n'
        '{"_id": "q1", "text": "cats again"}\n',
    )
    with pytest.raises(HeldoutError) as info:
        load_corpus(root)
    assert (info.value.path, info.value.line, info.value.field) == (
        root / "queries.jsonl",
        3,
        "_id",
    )
    assert "queries.jsonl, line 3, field '_id': duplicate query id 'q1' (first on line 1)" in str(
        info.value
    )


def test_corpus_and_heldout_reject_bad_query_files_with_the_same_message(tmp_path: Path) -> None:
    bad_files = [
        '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n',
        '{"_id": "q1", "text": 3}\n',
        '{"text": "no id"}\n',
        "\n",
    ]
    for i, queries in enumerate(bad_files):
        root = _corpus_dir(tmp_path / f"set{i}", queries)
        with pytest.raises(HeldoutError) as mining:
            load_corpus(root)
        with pytest.raises(HeldoutError) as heldout:
            load_heldout(root, "test")
        assert str(mining.value) == str(heldout.value)
        assert mining.value.path == root / "queries.jsonl"


def test_queries_are_optional_for_a_mining_corpus(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "corpus")
    (root / "queries.jsonl").unlink()
    corpus = load_corpus(root)
    assert len(corpus) == 6 and corpus.query_texts == {}
    assert corpus.text("d1") == "Cats Cats are small domesticated carnivores."
