"""Our metrics against the field's reference implementations (pytrec_eval, ranx) to 1e-9."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from recallwatch.evaluation.metrics import (
    JudgementIndex,
    QueryMetrics,
    compute_metrics,
    judged_positions,
)
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.evaluation.search import ExactSearcher, prepare_embeddings, tiebreak_ranks
from recallwatch.heldout.sets import load_heldout
from tests.helpers.embedding_sources import CachedEmbeddingSource

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pip install pytrec-eval-terrier")

KS = (1, 3, 5, 10, 20)


def trec_reference(
    qrels: Mapping[str, Mapping[str, int]],
    run: dict[str, dict[str, float]],
    ks: tuple[int, ...],
    relevance_level: int = 1,
) -> dict[str, dict[str, dict[int, float]]]:
    """Evaluate with pytrec_eval: {query: {metric: {k: value}}} in our metric names."""
    cut = ",".join(map(str, ks))
    measures = {f"recall.{cut}", f"P.{cut}", f"success.{cut}", f"ndcg_cut.{cut}", f"map_cut.{cut}"}
    full = pytrec_eval.RelevanceEvaluator(
        dict(qrels), measures, relevance_level=relevance_level
    ).evaluate(run)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for q, res in full.items():
        out[q] = {
            "recall": {k: res[f"recall_{k}"] for k in ks},
            "precision": {k: res[f"P_{k}"] for k in ks},
            "success": {k: res[f"success_{k}"] for k in ks},
            "ndcg": {k: res[f"ndcg_cut_{k}"] for k in ks},
            "map": {k: res[f"map_cut_{k}"] for k in ks},
            "mrr": {},
        }
    # pytrec_eval's recip_rank has no cutoff: evaluate it on each list cut at k.
    rr = pytrec_eval.RelevanceEvaluator(
        dict(qrels), {"recip_rank"}, relevance_level=relevance_level
    )
    for k in ks:
        cut_run = {
            q: dict(sorted(docs.items(), key=lambda kv: (-kv[1], _desc(kv[0])))[:k])
            for q, docs in run.items()
        }
        for q, res in rr.evaluate(cut_run).items():
            out[q]["mrr"][k] = res["recip_rank"]
    return out


def _desc(doc_id: str) -> tuple[int, ...]:
    """Sort key putting larger ids first (trec_eval breaks score ties by docno, descending)."""
    return (*tuple(-b for b in doc_id.encode()), 1)


def assert_matches(
    ours: QueryMetrics, query_ids: list[str], ref: dict[str, dict[str, dict[int, float]]]
) -> int:
    """Assert every per-query value equals the reference; return how many were compared."""
    compared = 0
    for qi, q in enumerate(query_ids):
        for metric, by_k in ref[q].items():
            for k, value in by_k.items():
                assert ours.per_query[metric][k][qi] == pytest.approx(value, abs=1e-9), (
                    q,
                    metric,
                    k,
                )
                compared += 1
    return compared


def run_of(
    query_ids: list[str], doc_ids: list[str], positions: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    """A pytrec_eval run from our ranked lists (scores as float64, as pytrec_eval reads them)."""
    return {
        q: {doc_ids[p]: float(s) for p, s in zip(positions[i], scores[i], strict=True) if p >= 0}
        for i, q in enumerate(query_ids)
    }


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("relevance_level", [1, 2])
def test_random_graded_qrels_with_ties(seed: int, relevance_level: int) -> None:
    rng = np.random.default_rng(seed)
    nd, nq, dim = 400, 60, 5
    doc_ids = [f"D{rng.integers(0, 10**6)}-{i}" for i in range(nd)]
    # Small integer embeddings: many exactly tied scores, including at the cutoffs.
    x = rng.integers(-2, 3, size=(nd, dim)).astype(np.float32)
    q = rng.integers(-2, 3, size=(nq, dim)).astype(np.float32)
    qrels: dict[str, dict[str, int]] = {}
    for i in range(nq):
        judged = rng.choice(nd, size=int(rng.integers(1, 25)), replace=False)
        qrels[f"q{i}"] = {doc_ids[j]: int(rng.integers(0, 4)) for j in judged}
    query_ids = [qid for qid, g in qrels.items() if max(g.values()) >= relevance_level]
    rows = np.array([int(qid[1:]) for qid in query_ids])
    searcher = ExactSearcher(q[rows], max(KS), similarity="dot", tiebreak=tiebreak_ranks(doc_ids))
    for a in range(0, nd, 128):
        searcher.add(prepare_embeddings(x[a : a + 128], "dot"), np.arange(a, min(a + 128, nd)))
    top = searcher.result()
    judgements = JudgementIndex.build(
        query_ids, qrels, {d: i for i, d in enumerate(doc_ids)}, relevance_level
    )
    ours = compute_metrics(top.positions, judgements, KS)
    # The evaluation indexes only the judged documents' positions: the same index.
    judged_only = JudgementIndex.build(
        query_ids,
        qrels,
        judged_positions(query_ids, qrels, doc_ids),
        relevance_level,
        num_docs=nd,
    )
    assert judged_only.num_docs == judgements.num_docs == nd
    assert np.array_equal(judged_only.keys, judgements.keys)
    assert np.array_equal(judged_only.grades, judgements.grades)
    assert np.array_equal(judged_only.num_relevant, judgements.num_relevant)
    ref = trec_reference(
        {q_: qrels[q_] for q_ in query_ids},
        run_of(query_ids, doc_ids, top.positions, top.scores),
        KS,
        relevance_level,
    )
    assert set(ref) == set(query_ids)
    assert assert_matches(ours, query_ids, ref) == len(query_ids) * len(KS) * 6


@pytest.mark.slow
def test_scifact_metrics_equal_pytrec_eval(scifact_dir, scifact_minilm) -> None:  # type: ignore[no-untyped-def]
    heldout = load_heldout(scifact_dir, "test")
    ks = (1, 5, 10, 20, 100)
    ev = evaluate(heldout, CachedEmbeddingSource(heldout, scifact_minilm), ks=ks, shard_rows=1000)
    ref = trec_reference(
        heldout.qrels,
        run_of(heldout.query_ids, heldout.corpus_ids, ev.topk.positions, ev.topk.scores),
        ks,
    )
    assert assert_matches(ev.metrics, heldout.query_ids, ref) == 300 * len(ks) * 6


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning")
def test_ranx_agrees_on_means() -> None:
    ranx = pytest.importorskip("ranx", reason="pip install ranx")
    rng = np.random.default_rng(11)
    nd, nq = 200, 40
    doc_ids = [f"d{i}" for i in range(nd)]
    scores = rng.random((nq, nd)).astype(np.float32)  # no ties: ranx breaks them its own way
    qrels = {
        f"q{i}": {doc_ids[j]: int(rng.integers(1, 3)) for j in rng.choice(nd, 5, replace=False)}
        for i in range(nq)
    }
    query_ids = list(qrels)
    order = np.argsort(-scores, axis=1)[:, :20]
    judgements = JudgementIndex.build(query_ids, qrels, {d: i for i, d in enumerate(doc_ids)})
    ours = compute_metrics(order.astype(np.int64), judgements, (5, 20))
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in order[i]} for i, q in enumerate(query_ids)}
    ref = ranx.evaluate(
        ranx.Qrels(qrels),
        ranx.Run(run),
        ["recall@5", "recall@20", "precision@5", "mrr@5", "hit_rate@5"],
    )
    assert ours.mean("recall", 5) == pytest.approx(ref["recall@5"], abs=1e-9)
    assert ours.mean("recall", 20) == pytest.approx(ref["recall@20"], abs=1e-9)
    assert ours.mean("precision", 5) == pytest.approx(ref["precision@5"], abs=1e-9)
    assert ours.mean("mrr", 5) == pytest.approx(ref["mrr@5"], abs=1e-9)
    assert ours.mean("success", 5) == pytest.approx(ref["hit_rate@5"], abs=1e-9)


def test_unjudged_share_counts_documents_without_any_judgement() -> None:
    """unjudged@k = 1 - Judged@k: a grade-0 judgement is judged; padding is no document."""
    docs = ["a", "b", "c", "d", "e"]
    qrels = {"q1": {"a": 1, "b": 0}, "q2": {"e": 2}}
    judgements = JudgementIndex.build(["q1", "q2"], qrels, {d: i for i, d in enumerate(docs)})
    ranked = np.array([[0, 2, 1, 3], [4, -1, -1, -1]], dtype=np.int64)  # q1: a c b d; q2: e
    m = compute_metrics(ranked, judgements, (1, 2, 4))
    assert m.per_query["unjudged"][1].tolist() == [0.0, 0.0]
    assert m.per_query["unjudged"][2].tolist() == [0.5, 0.0]
    assert m.per_query["unjudged"][4].tolist() == [0.5, 0.0]
