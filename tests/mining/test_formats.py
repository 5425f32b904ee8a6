"""Mined-set formats: recallwatch JSONL and sentence-transformers outputs, read and written back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recallwatch.errors import InputError
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.filtering import confidence_filter, soft_filter, write_filtered
from recallwatch.mining.formats import ImportOptions, read_mined
from recallwatch.mining.recommend import FilterSpec
from recallwatch.mining.tables import read_table
from tests.helpers.mining import write_jsonl

GOOD = {
    "query_id": "q1",
    "positive_ids": ["d1"],
    "positive_scores": [0.9],
    "negatives": [
        {"doc_id": "d5", "rank": 1, "score": 0.88},
        {"doc_id": "d2", "rank": 2, "score": 0.5},
    ],
}


def test_recallwatch_jsonl_round_trip(small_corpus: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [GOOD, {**GOOD, "query_id": "q2", "negatives": []}])
    mined = read_mined(path, load_corpus(small_corpus))
    assert mined.format == "recallwatch"
    q = mined.queries[0]
    assert q.positive_ids == ("d1",) and q.positive_score == 0.9
    assert [(n.doc_id, n.rank, n.score) for n in q.negatives] == [("d5", 1, 0.88), ("d2", 2, 0.5)]
    assert q.query_text == "what are cats"  # from queries.jsonl
    table = mined.table()
    assert list(table.rank) == [1, 2] and table.has_scores
    out = tmp_path / "out.jsonl"
    outcome = confidence_filter(table, FilterSpec(range_min=1))
    write_filtered(mined, table, outcome, out)
    again = read_mined(out, load_corpus(small_corpus))
    assert [n.doc_id for n in again.queries[0].negatives] == ["d2"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"negatives": [{"doc_id": "nope", "rank": 1}]}, "negatives[0].doc_id", "unknown document"),
        ({"positive_ids": ["ghost"]}, "positive_ids[0]", "unknown document"),
        ({"positive_ids": []}, "positive_ids", "non-empty list"),
        ({"negatives": [{"doc_id": "d1", "rank": 1}]}, "negatives[0].doc_id", "both as a positive"),
        ({"negatives": [{"doc_id": "d2", "rank": 0}]}, "negatives[0].rank", "positive integer"),
        ({"negatives": [{"doc_id": "d2", "score": "high"}]}, "negatives[0].score", "finite number"),
        ({"positive_scores": [0.1, 0.2]}, "positive_scores", "one per positive"),
        ({"query_id": ""}, "query_id", "query_id"),
    ],
)
def test_recallwatch_jsonl_errors_name_file_line_field(
    small_corpus: Path, tmp_path: Path, change: dict[str, object], field: str, message: str
) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{**GOOD, "query_id": "q2"}, {**GOOD, **change}])
    with pytest.raises(InputError, match=message) as info:
        read_mined(path, load_corpus(small_corpus))
    assert info.value.line == 2 and info.value.field == field and info.value.path == path
    assert f"{path}, line 2" in str(info.value)


def test_duplicate_query_and_empty_set(small_corpus: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [GOOD, GOOD])
    with pytest.raises(InputError, match="appears twice"):
        read_mined(path, load_corpus(small_corpus), ImportOptions(format="recallwatch"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_mined(empty, load_corpus(small_corpus), ImportOptions(format="recallwatch"))


def _st_triplets(small_corpus: Path, tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    return write_jsonl(tmp_path / "triplets.jsonl", rows)


def test_unmatched_texts_are_an_error_naming_lines(small_corpus: Path, tmp_path: Path) -> None:
    rows = [
        {
            "anchor": "what are cats",
            "positive": "Cats are small domesticated carnivores.",
            "negative": "Kittens are young cats that play a lot.",
        },
        {
            "anchor": "what are cats",
            "positive": "Cats are small domesticated carnivores.",
            "negative": "A text that is in no corpus.",
        },
    ]
    path = _st_triplets(small_corpus, tmp_path, rows)
    corpus = load_corpus(small_corpus)
    with pytest.raises(InputError, match=r"1 text\(s\) match no document.*line 2") as info:
        read_mined(path, corpus)
    assert info.value.path == path
    mined = read_mined(path, corpus, ImportOptions(allow_unmatched=True))
    assert mined.report.unmatched_negatives == 1
    assert mined.report.unmatched_examples == [(2, "A text that is in no corpus.")]
    assert [n.doc_id for n in mined.queries[0].negatives] == ["d5"]
    assert mined.queries[0].query_id == "q1"  # anchor matched queries.jsonl


def test_unknown_columns_and_bad_cells(small_corpus: Path, tmp_path: Path) -> None:
    corpus = load_corpus(small_corpus)
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"a": "x", "b": "y"}])
    with pytest.raises(InputError, match="cannot tell the mined-set format"):
        read_mined(odd, corpus)
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"q": "what are cats", "p": "Cats are small domesticated carnivores.", "negative": 3}],
    )
    with pytest.raises(InputError, match="non-empty text") as info:
        read_mined(bad, corpus)
    assert (info.value.line, info.value.field) == (1, "negative")
    other = tmp_path / "mined.txt"
    other.write_text("x")
    with pytest.raises(InputError, match="unknown file type"):
        read_table(other)


CASES = [
    ("triplet", False),
    ("triplet", True),
    ("n-tuple", False),
    ("n-tuple", True),
    ("labeled-pair", False),
    ("labeled-list", False),
    ("labeled-list", True),
]


@pytest.mark.parametrize(("fmt", "scores"), CASES)
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_real_mine_hard_negatives_outputs(
    st_outputs: Callable[..., tuple[Path, Path]],
    tmp_path: Path,
    fmt: str,
    scores: bool,
    suffix: str,
) -> None:
    path, corpus_dir = st_outputs(fmt, scores, suffix)
    corpus = load_corpus(corpus_dir)
    mined = read_mined(path, corpus)
    expected_format = "n-tuple-scores" if (fmt == "n-tuple" and scores) else fmt
    assert mined.format == expected_format
    assert len(mined.queries) == 8  # the duplicated anchor merged
    by_anchor = {q.query_text: q for q in mined.queries}
    topic0 = by_anchor["what about topic 0"]
    if fmt != "labeled-pair":
        assert set(topic0.positive_ids) == {"d0", "d9"}
    for q in mined.queries:
        assert 1 <= len(q.negatives) <= 3
        assert [n.rank for n in q.negatives] == list(range(1, len(q.negatives) + 1))
        assert not set(q.positive_ids) & {n.doc_id for n in q.negatives}
        if scores:
            assert q.positive_score is not None and all(n.score is not None for n in q.negatives)
    # Write back in the same layout, dropping rank 1, and read it again.
    table = mined.table()
    out = tmp_path / f"clean{suffix}"
    outcome = confidence_filter(table, FilterSpec(range_min=1))
    written = write_filtered(mined, table, outcome, out)
    assert written["rows_out"] <= written["rows_in"]
    if fmt == "n-tuple":  # every row lost its first negative: dropped whole, as ST would
        assert written["rows_out"] == 0 and written["collateral_negatives"] > 0
        return
    assert read_table(out).columns == read_table(path).columns
    again = read_mined(out, corpus, ImportOptions(format=expected_format))
    assert all(n.rank >= 1 for q in again.queries for n in q.negatives)
    kept = {(q.query_text, n.doc_id) for q in again.queries for n in q.negatives}
    dropped = {(q.query_text, q.negatives[0].doc_id) for q in mined.queries}
    assert not kept & dropped


def test_labeled_pair_with_scores_states_its_assumption(
    st_outputs: Callable[..., tuple[Path, Path]],
) -> None:
    path, corpus_dir = st_outputs("labeled-pair", True)
    mined = read_mined(path, load_corpus(corpus_dir))
    assert any("first 1 row(s)" in a for a in mined.report.assumptions)
    assert all(q.positive_score is not None for q in mined.queries)


def test_soft_weights_written_per_format(
    st_outputs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    for fmt, column in (("triplet", "weight"), ("n-tuple", "weights"), ("labeled-list", "weights")):
        path, corpus_dir = st_outputs(fmt, True)
        mined = read_mined(path, load_corpus(corpus_dir))
        table = mined.table()
        outcome = soft_filter(table.score, table.positive_score, scale=0.5)
        out = tmp_path / f"soft-{fmt}.jsonl"
        write_filtered(mined, table, outcome, out)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        values = np.array(
            [v for r in rows for v in (r[column] if isinstance(r[column], list) else [r[column]])]
        )
        assert ((values >= 0) & (values <= 1)).all() and (values < 1).any()
