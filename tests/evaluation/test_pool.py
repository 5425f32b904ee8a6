"""The pooled bound on real embeddings: recall@k on a pool holding every judged document is, per
query and at every k, at least recall@k on the whole corpus (all-MiniLM-L6-v2 on SciFact test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recallwatch.evaluation.pipeline import evaluate
from recallwatch.evaluation.pool import build_pool, judged_pool_positions, restrict, top_candidates
from recallwatch.heldout.sets import load_heldout
from tests.helpers.embedding_sources import CachedEmbeddingSource

KS = tuple(range(1, 101))


class _Perturbed(CachedEmbeddingSource):
    """The real embeddings moved by seeded noise: a different checkpoint of the same model."""

    def __init__(self, heldout, cache, scale: float, seed: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(heldout, cache)
        rng = np.random.default_rng(seed)
        self.q = self.q + scale * rng.standard_normal(self.q.shape).astype(np.float32)
        self.x = self.x + scale * rng.standard_normal(self.x.shape).astype(np.float32)


def _check_bound(exact, pooled) -> int:  # type: ignore[no-untyped-def]
    """Assert the bound for every query at every k; return how many (query, k) are strict."""
    strict = 0
    for metric in ("recall", "success", "mrr"):
        for k in KS:
            full = exact.metrics.per_query[metric][k]
            pool = pooled.metrics.per_query[metric][k]
            bad = np.flatnonzero(pool < full - 1e-12)
            assert bad.size == 0, (metric, k, bad[:5])
            strict += int(np.count_nonzero(pool > full + 1e-12))
    return strict


@pytest.mark.parametrize("candidates_from", ["same", "other"])
def test_pooled_recall_bounds_exact_recall_per_query_at_every_k(
    scifact_dir: Path, scifact_minilm, candidates_from: str
) -> None:  # type: ignore[no-untyped-def]
    heldout = load_heldout(scifact_dir, "test")
    source = CachedEmbeddingSource(heldout, scifact_minilm)
    exact = evaluate(heldout, source, ks=KS)
    # The pool's candidates come from an earlier exact evaluation: of these embeddings, or of a
    # different checkpoint's (the real embeddings moved by noise).
    earlier = (
        exact
        if candidates_from == "same"
        else evaluate(heldout, _Perturbed(heldout, scifact_minilm, 0.03, seed=5), ks=(10,))
    )
    # Its stored rankings (query -> top document ids, best first), as the runner keeps them.
    rankings = {
        q: [heldout.corpus_ids[p] for p in earlier.topk.positions[i, :10].tolist() if p >= 0]
        for i, q in enumerate(heldout.query_ids)
    }
    judged_ids = {d for q in heldout.query_ids for d in heldout.qrels[q]}
    cands = top_candidates(rankings, per_query=10, limit=2_000, judged=judged_ids)
    assert cands and not judged_ids & set(cands)
    position = heldout.doc_position
    judged = judged_pool_positions(heldout)
    strict_total = 0
    for size, seed in ((0, 0), (600, 1), (1_500, 2)):
        pool = build_pool(heldout.num_docs, judged, [position[d] for d in cands], size, seed=seed)
        assert set(judged.tolist()) <= set(pool.tolist())
        assert pool.size == max(size, judged.size)
        sub = restrict(heldout, pool)
        pooled = evaluate(sub, CachedEmbeddingSource(sub, scifact_minilm), ks=KS)
        assert pooled.num_queries == exact.num_queries == 300
        strict_total += _check_bound(exact, pooled)
    # The bound is informative, not trivially equal: the smallest pool ranks positives higher.
    assert strict_total > 0


def test_a_pool_is_seeded_bounded_and_candidates_come_first() -> None:
    judged = [3, 7]
    a = build_pool(1_000, judged, [9, 3, 11, 9], 6, seed=4)
    assert {3, 7, 9, 11} <= set(a.tolist()) and a.size == 6
    assert np.array_equal(a, build_pool(1_000, judged, [9, 3, 11, 9], 6, seed=4))
    assert build_pool(1_000, judged, [9, 11], 3, seed=0).tolist() == [3, 7, 9]
    # Judged documents always enter whole, even past the size.
    assert build_pool(1_000, judged, [9], 1).tolist() == [3, 7]
    with pytest.raises(ValueError, match="outside the corpus"):
        build_pool(10, [3], [10], 5)


def test_candidates_come_round_robin_from_stored_rankings_without_judged_ones() -> None:
    rankings = {"q1": ["a", "b", "c", "d"], "q2": ["b", "e", "f"], "q3": ["g"], "q4": []}
    # Rank 1 of every query, then rank 2 ...; each document once; judged ones left out.
    assert top_candidates(rankings, 3, 100) == ["a", "b", "g", "e", "c", "f"]
    assert top_candidates(rankings, 3, 100, judged={"b", "g"}) == ["a", "e", "c", "f"]
    # Capped by ranks per query and by the limit (the pool's size).
    assert top_candidates(rankings, 1, 100) == ["a", "b", "g"]
    assert top_candidates(rankings, 3, 4) == ["a", "b", "g", "e"]
    # Rankings stored shallower than asked give what they hold; none give none.
    assert top_candidates(rankings, 50, 100) == ["a", "b", "g", "e", "c", "f", "d"]
    assert top_candidates({}, 20, 100) == []
    assert top_candidates(rankings, 0, 100) == []


def test_restricting_to_a_pool_without_a_judged_document_is_an_error(
    scifact_dir: Path,
) -> None:
    heldout = load_heldout(scifact_dir, "test")
    judged = judged_pool_positions(heldout)
    with pytest.raises(ValueError, match="lacks 1 judged document"):
        restrict(heldout, judged[1:])
