"""Exact streamed search: equal to brute force, trec_eval's tie order, padding, bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.evaluation.search import (
    MERGE_WIDTH,
    TIE_MARGIN,
    ExactSearcher,
    NonFiniteRowsError,
    Similarity,
    prepare_embeddings,
    tiebreak_ranks,
)


def brute_force(q: np.ndarray, x: np.ndarray, ids: list[str], k: int, sim: str) -> list[list[int]]:
    """Reference ranking: score descending, then doc id descending (trec_eval's order)."""
    if sim == "cosine":
        q = prepare_embeddings(q.copy(), "cosine")
    if sim == "l2":
        s = -(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    else:
        s = q @ x.T
    s = s.astype(np.float32)
    out = []
    for row in s:
        by_id = sorted(range(len(ids)), key=ids.__getitem__, reverse=True)
        out.append(sorted(by_id, key=lambda j: -row[j])[:k])
    return out


def run_search(q: np.ndarray, x: np.ndarray, ids: list[str], k: int, sim: Similarity, shard: int):
    searcher = ExactSearcher(q, k, similarity=sim, tiebreak=tiebreak_ranks(ids))
    for a in range(0, len(x), shard):
        block = prepare_embeddings(x[a : a + shard].copy(), sim)
        searcher.add(block, np.arange(a, min(a + shard, len(x)), dtype=np.int64))
    return searcher.result()


@pytest.mark.parametrize("sim", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("shard", [7, 64, 1000])
def test_streamed_search_equals_brute_force_with_ties(sim: Similarity, shard: int) -> None:
    rng = np.random.default_rng(3)
    # Vectors whose scores are exact in float32 make many exactly tied scores: small integers, and
    # signed one-hot documents for cosine (already unit length, so normalising changes nothing).
    if sim == "cosine":
        x = np.zeros((240, 6), np.float32)
        x[np.arange(240), rng.integers(0, 6, 240)] = rng.choice([-1.0, 1.0], 240)
    else:
        x = rng.integers(-2, 3, size=(240, 6)).astype(np.float32)
        x[np.abs(x).sum(axis=1) == 0, 0] = 1.0
    q = rng.integers(-2, 3, size=(30, 6)).astype(np.float32)
    q[np.abs(q).sum(axis=1) == 0, 0] = 1.0
    ids = [f"doc-{i:03d}" if i % 3 else f"d{i}" for i in range(240)]
    top = run_search(q, x, ids, 15, sim, shard)
    assert top.positions.tolist() == brute_force(q, x, ids, 15, sim)
    assert np.all(np.diff(top.scores, axis=1) <= 0)


def test_fewer_documents_than_k_are_padded() -> None:
    x = np.eye(3, dtype=np.float32)
    q = np.array([[1.0, 0.5, 0.0]], dtype=np.float32)
    top = run_search(q, x, ["a", "b", "c"], 5, "dot", 2)
    assert top.positions.tolist() == [[0, 1, 2, -1, -1]]
    assert top.scores[0, :3].tolist() == [1.0, 0.5, 0.0]
    assert np.isneginf(top.scores[0, 3:]).all()


def test_tiebreak_ranks_follow_descending_byte_order() -> None:
    ranks = tiebreak_ranks(["b", "a", "c", "B"])
    # Descending: c, b, a, B ("B" < "a" in byte order).
    assert ranks.tolist() == [1, 2, 0, 3]


def test_prepare_embeddings_normalises_for_cosine_only() -> None:
    x = np.array([[3.0, 4.0]], dtype=np.float32)
    assert np.allclose(prepare_embeddings(x.copy(), "cosine"), [[0.6, 0.8]])
    assert np.allclose(prepare_embeddings(x.copy(), "dot"), [[3.0, 4.0]])


def test_prepare_embeddings_copies_a_read_only_matrix_only_to_normalise_it() -> None:
    """A mapped corpus file is searched where it lies unless rows must change."""
    unit = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    unit.flags.writeable = False
    assert prepare_embeddings(unit, "cosine") is unit
    assert prepare_embeddings(unit, "dot") is unit
    long = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    long.flags.writeable = False
    out = prepare_embeddings(long, "cosine")
    assert out is not long and out.flags.writeable
    assert np.allclose(out, [[0.6, 0.8], [1.0, 0.0]])
    assert long.tolist() == [[3.0, 4.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    ("row", "sim", "problem"),
    [
        ([np.nan, 1.0], "dot", "NaN or inf values"),
        ([np.inf, 1.0], "cosine", "NaN or inf values"),
        ([0.0, 0.0], "cosine", "all-zero vector"),
    ],
)
def test_prepare_embeddings_reports_bad_rows(
    row: list[float], sim: Similarity, problem: str
) -> None:
    x = np.array([[1.0, 0.0], row, [0.0, 1.0]], dtype=np.float32)
    with pytest.raises(NonFiniteRowsError) as info:
        prepare_embeddings(x, sim)
    assert info.value.rows.tolist() == [1]
    assert problem in str(info.value)


def test_shard_dimension_mismatch_is_refused() -> None:
    searcher = ExactSearcher(
        np.ones((2, 4), np.float32), 3, similarity="dot", tiebreak=tiebreak_ranks(["a"])
    )
    with pytest.raises(ValueError, match=r"expected \(n, 4\)"):
        searcher.add(np.ones((1, 5), np.float32), np.array([0]))


def test_candidates_merged_in_batches_equal_brute_force_with_ties() -> None:
    """Many shards: candidates wait and are merged every ``MERGE_WIDTH`` pending columns (the
    first 60 shards: integer scores in a wide range, few ties), or at once before a shard whose ties
    reach past the fetch is merged (the last 15: scores in {-2..2}, ties everywhere)."""
    rng = np.random.default_rng(5)
    wide = rng.integers(-50, 51, size=(2400, 8))
    tied = np.pad(rng.integers(-1, 2, size=(600, 2)), ((0, 0), (0, 6)))
    x = np.concatenate([wide, tied]).astype(np.float32)
    q = rng.integers(-2, 3, size=(12, 8)).astype(np.float32)
    ids = [f"doc-{i:04d}" if i % 5 else f"d{i}" for i in range(3000)]
    assert 60 * (15 + TIE_MARGIN) > 2 * MERGE_WIDTH
    top = run_search(q, x, ids, 15, "dot", 40)
    assert top.positions.tolist() == brute_force(q, x, ids, 15, "dot")
    assert np.all(np.diff(top.scores, axis=1) <= 0)


def test_shards_top_k_added_as_candidates_equal_one_search_with_ties() -> None:
    """Each shard searched on its own (as a Ray task does), then its top-K added to one searcher
    over the whole corpus: the same ranking as one search, ties in trec_eval's order."""
    rng = np.random.default_rng(9)
    x = rng.integers(-2, 3, size=(300, 6)).astype(np.float32)
    q = rng.integers(-2, 3, size=(20, 6)).astype(np.float32)
    ids = [f"doc-{i:03d}" if i % 4 else f"d{i}" for i in range(300)]
    ranks = tiebreak_ranks(ids)
    merged = ExactSearcher(q, 10, similarity="dot", tiebreak=ranks)
    for a in range(0, 300, 70):
        shard = ExactSearcher(q, 10, similarity="dot", tiebreak=ranks)
        shard.add(x[a : a + 70], np.arange(a, min(a + 70, 300), dtype=np.int64))
        part = shard.result()
        merged.add_candidates(part.scores, part.positions)
    assert merged.result().positions.tolist() == brute_force(q, x, ids, 10, "dot")
    with pytest.raises(ValueError, match="expected \\(20, width\\)"):
        merged.add_candidates(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="no -1 padding"):
        merged.add_candidates(np.zeros((20, 1), np.float32), np.full((20, 1), -1, np.int64))
