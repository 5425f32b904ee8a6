"""The precomputed embedding source: round trips, dtypes, row order and every bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recallwatch.encoders import open_source
from recallwatch.errors import CheckpointError, EmbeddingError
from recallwatch.evaluation.pipeline import evaluate


def emb(ckpt: Path) -> Path:
    return ckpt / "eval_embeddings"


def test_precomputed_round_trip_and_shard_size_does_not_matter(synth) -> None:  # type: ignore[no-untyped-def]
    _, heldout, ckpt = synth
    one = evaluate(heldout, open_source("precomputed", ckpt), ks=(1, 10), shard_rows=10_000)
    many = evaluate(heldout, open_source("precomputed", ckpt), ks=(1, 10), shard_rows=7)
    assert np.array_equal(one.topk.positions, many.topk.positions)
    assert one.mean("recall", 10) == many.mean("recall", 10) > 0.5


def test_float16_and_reordered_rows_with_extra_ids(synth) -> None:  # type: ignore[no-untyped-def]
    _, heldout, ckpt = synth
    ref = evaluate(heldout, open_source("precomputed", ckpt), ks=(10,))
    d = emb(ckpt)
    corpus = np.load(d / "corpus.npy")
    ids = (d / "corpus_ids.txt").read_text().split()
    perm = np.random.default_rng(0).permutation(len(ids))
    extra = np.random.default_rng(1).standard_normal((3, corpus.shape[1])).astype(np.float32)
    np.save(d / "corpus.npy", np.vstack([corpus[perm], extra]).astype(np.float16))
    (d / "corpus_ids.txt").write_text("\n".join([ids[i] for i in perm] + ["x1", "x2", "x3"]))
    q = np.load(d / "queries.npy")
    np.save(d / "queries.npy", q.astype(np.float16))
    got = evaluate(heldout, open_source("precomputed", ckpt), ks=(10,), shard_rows=50)
    assert got.num_docs == heldout.num_docs
    assert got.mean("recall", 10) == pytest.approx(ref.mean("recall", 10), abs=0.02)


def _corrupt(ckpt: Path, case: str) -> None:
    d = emb(ckpt)
    if case == "nan-corpus":
        x = np.load(d / "corpus.npy")
        x[17, 3] = np.nan
        np.save(d / "corpus.npy", x)
    elif case == "inf-query":
        q = np.load(d / "queries.npy")
        q[4, 0] = np.inf
        np.save(d / "queries.npy", q)
    elif case == "wrong-dimension":
        np.save(d / "corpus.npy", np.ones((300, 8), dtype=np.float32))
    elif case == "row-count":
        (d / "corpus_ids.txt").write_text("\n".join(f"doc{i}" for i in range(299)))
    elif case == "missing-query":
        ids = (d / "query_ids.txt").read_text().split()
        (d / "query_ids.txt").write_text("\n".join(["zz", *ids[1:]]))
    elif case == "missing-doc":
        ids = (d / "corpus_ids.txt").read_text().split()
        (d / "corpus_ids.txt").write_text("\n".join(["zz", *ids[1:]]))
    elif case == "int-dtype":
        np.save(d / "corpus.npy", np.ones((300, 16), dtype=np.int32))
    elif case == "three-d":
        np.save(d / "queries.npy", np.ones((40, 4, 4), dtype=np.float32))
    elif case == "truncated":
        raw = (d / "corpus.npy").read_bytes()
        (d / "corpus.npy").write_bytes(raw[: len(raw) // 2])
    elif case == "not-npy":
        (d / "corpus.npy").write_text("hello")
    elif case == "duplicate-id":
        ids = (d / "corpus_ids.txt").read_text().split()
        (d / "corpus_ids.txt").write_text("\n".join([*ids[:5], ids[0], *ids[6:]]))
    elif case == "blank-id":
        ids = (d / "query_ids.txt").read_text().split()
        (d / "query_ids.txt").write_text("\n".join([*ids[:2], "", *ids[3:]]))


BAD = [
    (
        "nan-corpus",
        r"corpus.npy: corpus embedding of document 'doc17' \(row 17\) has NaN or inf values",
    ),
    ("inf-query", r"query embedding of 'q4' has NaN or inf values"),
    (
        "wrong-dimension",
        r"corpus.npy, field 'dimension': dimension 8 does not match the query dimension 16",
    ),
    ("row-count", r"corpus.npy, field 'shape': 300 rows but corpus_ids.txt has 299 ids"),
    ("missing-query", r"query_ids.txt: 1 evaluated query id\(s\) have no embedding, first: 'q0'"),
    ("missing-doc", r"corpus_ids.txt: 1 corpus document\(s\) have no embedding, first: 'doc0'"),
    ("int-dtype", r"corpus.npy, field 'dtype': dtype int32 is not supported"),
    ("three-d", r"queries.npy, field 'shape': expected a 2-D matrix"),
    ("truncated", r"corpus.npy: file is truncated"),
    ("not-npy", r"corpus.npy: not a valid .npy file"),
    ("duplicate-id", r"corpus_ids.txt, line 6: duplicate id 'doc0' \(first on line 1\)"),
    ("blank-id", r"query_ids.txt, line 3: blank id"),
]


@pytest.mark.parametrize(("case", "message"), BAD, ids=[c for c, _ in BAD])
def test_precomputed_bad_input_names_file_and_row(synth, case: str, message: str) -> None:  # type: ignore[no-untyped-def]
    _, heldout, ckpt = synth
    _corrupt(ckpt, case)
    with pytest.raises(EmbeddingError, match=message):
        evaluate(heldout, open_source("precomputed", ckpt), ks=(10,), shard_rows=64)


def test_precomputed_without_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no eval_embeddings/ directory"):
        open_source("precomputed", tmp_path)
