"""Per-query views of stored outcomes: a metric per query at k, and lost queries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recallwatch.evaluation.outcomes import lost_queries, per_query_metric

OUTCOMES = {
    "q1": {"d1": 1, "d2": 12},  # one of two in the top 10
    "q2": {"d3": 0},  # not retrieved
    "q3": {"d4": 3, "d5": 4, "d6": 50},
}


@pytest.mark.parametrize(
    ("metric", "k", "expected"),
    [
        ("recall", 10, {"q1": 0.5, "q2": 0.0, "q3": 2 / 3}),
        ("recall", 100, {"q1": 1.0, "q2": 0.0, "q3": 1.0}),
        ("success", 1, {"q1": 1.0, "q2": 0.0, "q3": 0.0}),
        ("mrr", 10, {"q1": 1.0, "q2": 0.0, "q3": 1 / 3}),
        (
            "ndcg",
            10,
            {
                "q1": 1.0 / (1.0 + 1 / np.log2(3)),
                "q2": 0.0,
                "q3": (1 / np.log2(4) + 1 / np.log2(5)) / (1 + 1 / np.log2(3) + 1 / np.log2(4)),
            },
        ),
    ],
)
def test_per_query_metric_from_outcomes(metric: str, k: int, expected: dict[str, float]) -> None:
    got = per_query_metric(OUTCOMES, metric, k)  # type: ignore[arg-type]
    assert got == pytest.approx(expected)


def test_per_query_recall_agrees_with_compute_metrics() -> None:
    from recallwatch.evaluation.metrics import JudgementIndex, compute_metrics

    rng = np.random.default_rng(0)
    positions = np.array([rng.permutation(50)[:20] for _ in range(30)], dtype=np.int64)
    qrels = {f"q{i}": {f"d{j}": 1 for j in rng.choice(50, 3, replace=False)} for i in range(30)}
    docs = {f"d{j}": j for j in range(50)}
    qids = list(qrels)
    m = compute_metrics(positions, JudgementIndex.build(qids, qrels, docs), ks=[1, 5, 20])
    outcomes = {
        q: {
            d: int(np.nonzero(positions[i] == docs[d])[0][0]) + 1 if docs[d] in positions[i] else 0
            for d in qrels[q]
        }
        for i, q in enumerate(qids)
    }
    for metric, k in itertools.product(("recall", "success", "mrr", "ndcg"), (1, 5, 20)):
        got = per_query_metric(outcomes, metric, k)  # type: ignore[arg-type]
        assert [got[q] for q in qids] == pytest.approx(m.per_query[metric][k].tolist())


def test_lost_queries_largest_drop_first() -> None:
    before = {
        "a": {"d1": 2, "d2": 5},
        "b": {"d3": 1},
        "c": {"d4": 9, "d5": 0},
        "d": {"d6": 4},
        "e": {"d7": 30},  # not in the top 10 before: cannot be lost
    }
    after = {
        "a": {"d1": 2, "d2": 40},  # lost one of two
        "b": {"d3": 0},  # lost its only one
        "c": {"d4": 11, "d5": 3},  # lost d4 but gained d5: still a loss of d4
        "d": {"d6": 10},  # still in the top 10
        "e": {"d7": 0},
    }
    lost = lost_queries(before, after, 10)
    assert [(q.query_id, q.doc_id, q.rank_before, q.rank_after) for q in lost] == [
        ("b", "d3", 1, 0),
        ("a", "d2", 5, 40),
        ("c", "d4", 9, 11),
    ]
    assert lost[0].recall_before == 1.0 and lost[0].recall_after == 0.0
