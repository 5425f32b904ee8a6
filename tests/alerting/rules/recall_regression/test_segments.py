"""The pure decision logic: mining segments, baselines, per-query values, lost queries, rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recallwatch.alerting.regression import (
    CheckpointSummary,
    amplification_high,
    below_floor,
    choose_baseline,
    confirmed,
    evaluation_stale,
    failing_streak,
    fn_rate_high,
    lost_queries,
    mining_diff,
    mining_segments,
    per_query_metric,
    permutations_for,
    selection_alpha,
    still_regressed,
)
from recallwatch.alerting.regression import paired_regression_test as decide
from recallwatch.stats import paired_randomisation_pvalues, paired_randomisation_test


def ck(i: int, fp: str | None, value: float | None, name: str | None = None) -> CheckpointSummary:
    return CheckpointSummary(i, name or f"checkpoint-{i * 100}", i * 100, fp, value)


# A: 0.70 0.74 0.72 | B: 0.65 0.66 | C: 0.60
HISTORY = [
    ck(1, "A", 0.70),
    ck(2, "A", 0.74),
    ck(3, "A", 0.72),
    ck(4, "B", 0.65),
    ck(5, None, 0.99),  # no mining metadata: ignored for segments
    ck(6, "B", 0.66),
    ck(7, "C", 0.60),
]


def test_segments_split_on_fingerprint_changes_and_skip_unknown() -> None:
    segs = mining_segments(HISTORY)
    assert [[c.id for c in s] for s in segs] == [[1, 2, 3], [4, 6], [7]]


@pytest.mark.parametrize(
    ("current", "compare_with", "policy", "pinned", "expected", "kind", "change"),
    [
        (1, "previous_mining", "best", None, None, None, None),  # no mining change yet
        (3, "previous_mining", "best", None, None, None, None),
        (4, "previous_mining", "best", None, 2, "previous_mining", 4),
        (4, "previous_mining", "last", None, 3, "previous_mining", 4),
        (6, "previous_mining", "best", None, 2, "previous_mining", 4),
        (7, "previous_mining", "best", None, 6, "previous_mining", 7),  # best of B
        (7, "previous_mining", "last", None, 6, "previous_mining", 7),
        (3, "same_mining", "best", None, 2, "same_mining", 1),
        (3, "same_mining", "last", None, 2, "same_mining", 1),
        (1, "same_mining", "best", None, None, None, None),  # nothing earlier
        (6, "same_mining", "best", None, 4, "same_mining", 4),
        (7, "same_mining", "best", None, None, None, None),
        (7, "previous_mining", "best", "checkpoint-100", 1, "pinned", 7),
        (7, "previous_mining", "best", "checkpoint-999", None, None, None),  # unknown pin
        (5, "previous_mining", "best", None, None, None, None),  # current has no metadata
    ],
)
def test_choose_baseline(
    current: int,
    compare_with: str,
    policy: str,
    pinned: str | None,
    expected: int | None,
    kind: str | None,
    change: int | None,
) -> None:
    cur = next(c for c in HISTORY if c.id == current)
    b = choose_baseline(
        HISTORY,
        cur,
        compare_with=compare_with,  # type: ignore[arg-type]
        policy=policy,  # type: ignore[arg-type]
        pinned=pinned,
    )
    if expected is None:
        assert b is None
        return
    assert b is not None
    assert (b.checkpoint.id, b.kind) == (expected, kind)
    assert (b.change.id if b.change else None) == change


def test_best_baseline_ties_go_to_the_earliest_and_unscored_are_skipped() -> None:
    hist = [ck(1, "A", 0.7), ck(2, "A", None), ck(3, "A", 0.7), ck(4, "B", 0.5)]
    b = choose_baseline(hist, hist[-1])
    assert b is not None and b.checkpoint.id == 1


def test_mining_diff_is_key_by_key_and_nested() -> None:
    before = {"teacher": "m1", "range_min": 0, "nested": {"a": 1, "b": [1, 2]}, "gone": True}
    after = {"teacher": "m1", "range_min": 10, "nested": {"a": 1, "b": [1, 3]}, "new": None}
    diff = [(c.key, c.before, c.after, c.change) for c in mining_diff(before, after)]
    assert diff == [
        ("gone", True, None, "removed"),
        ("nested.b", [1, 2], [1, 3], "changed"),
        ("new", None, None, "added"),
        ("range_min", 0, 10, "changed"),
    ]
    assert mining_diff({"x": 1}, {"x": 1.0})[0].change == "changed"  # 1 vs 1.0 is a change
    assert mining_diff(before, before) == []


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


def test_verdict_needs_significance_and_the_effect_floor() -> None:
    rng = np.random.default_rng(5)
    before = (rng.random(2_000) < 0.7).astype(float)
    after = before.copy()
    flip = rng.choice(np.flatnonzero(before == 1), 100, replace=False)
    after[flip] = 0.0  # a 5-point drop, all in one direction
    v = decide(before, after)
    assert v.regressed and v.test.p_value < 1e-3 and v.drop == pytest.approx(0.05)
    assert v.difference.upper < 0 < v.before.estimate - v.after.estimate
    # Significant but below the floor: 12 of 2,000 queries (0.6 points) lost, none gained.
    small = before.copy()
    small[flip[:12]] = 0.0
    v = decide(before, small, min_drop=0.01)
    assert v.significant and not v.large_enough and not v.regressed
    # An exact 1-point drop is on the regressed side of a 0.01 floor.
    exact = before.copy()
    exact[flip[:20]] = 0.0
    assert decide(before, exact, min_drop=0.01).large_enough
    # An improvement is never a regression.
    assert not decide(after, before).regressed


def test_randomisation_pvalue_matches_exact_enumeration() -> None:
    d = np.array([-1.0, -1.0, -0.5, -1.0, 0.5, -1.0, 0.0, -0.5, -1.0, 1.0])
    total = d.sum()
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=d.size)))
    exact = float(((signs * np.abs(d)) @ np.ones(d.size) <= total + 1e-12).mean())
    # sign flips of |d| and of d enumerate the same set: this is the exact permutation p-value
    p = paired_randomisation_pvalues(d, permutations=200_000, seed=3)[0]
    assert p == pytest.approx(exact, abs=0.005)
    two = paired_randomisation_pvalues(d, permutations=200_000, seed=3, alternative="two-sided")
    exact_two = float((np.abs(signs @ np.abs(d)) >= abs(total) - 1e-12).mean())
    assert two[0] == pytest.approx(exact_two, abs=0.005)


def test_randomisation_test_edges() -> None:
    same = np.array([0.5, 1.0, 0.0])
    t = paired_randomisation_test(same, same, permutations=999)
    assert t.p_value == 1.0 and t.discordant == 0
    # The +1 correction: never below 1 / (B + 1), even for an extreme drop.
    ones, zeros = np.ones(200), np.zeros(200)
    assert paired_randomisation_test(ones, zeros, permutations=999).p_value == pytest.approx(1e-3)
    # Seeded: the same inputs give the same p-value; another seed a slightly different one.
    rng = np.random.default_rng(1)
    b, a = rng.random(300), rng.random(300) - 0.05
    p1 = paired_randomisation_test(b, a, seed=7).p_value
    assert paired_randomisation_test(b, a, seed=7).p_value == p1
    with pytest.raises(ValueError, match="same length"):
        paired_randomisation_test(b, a[:-1])
    with pytest.raises(ValueError, match="finite"):
        paired_randomisation_pvalues(np.array([np.nan, 1.0]))


@pytest.mark.parametrize(
    ("recent", "confirm", "expected"),
    [
        ([True], 1, True),
        ([False], 1, False),
        ([True], 2, False),
        ([False, True, True], 2, True),
        ([True, False, True], 2, False),
        ([True, True, True], 3, True),
        ([], 1, False),
    ],
)
def test_confirmation(recent: list[bool], confirm: int, expected: bool) -> None:
    assert confirmed(recent, confirm) is expected


def test_other_rules() -> None:
    assert fn_rate_high(0.051, 0.05) and not fn_rate_high(0.05, 0.05)
    assert amplification_high(3.5, 3.0) and not amplification_high(None, 3.0)
    assert not amplification_high(float("inf"), 3.0)
    assert below_floor(0.49, 0.5) and not below_floor(0.5, 0.5)
    assert failing_streak([True, False, True, True]) == 2 and failing_streak([]) == 0
    assert evaluation_stale(None, since=0.0, now=101.0, after_seconds=100.0)
    assert not evaluation_stale(50.0, since=0.0, now=101.0, after_seconds=100.0)
    assert evaluation_stale(0.5, since=0.0, now=101.0, after_seconds=100.0)


def test_a_best_baseline_counts_its_candidates_and_is_tested_at_alpha_over_them() -> None:
    current = HISTORY[-1]
    best = choose_baseline(HISTORY, current, policy="best")
    last = choose_baseline(HISTORY, current, policy="last")
    assert best is not None and last is not None
    assert (best.checkpoint.name, best.candidates) == ("checkpoint-600", 2)
    assert (last.checkpoint.name, last.candidates) == ("checkpoint-600", 1)
    same = choose_baseline(HISTORY, HISTORY[2], compare_with="same_mining")
    assert same is not None and same.candidates == 2
    assert selection_alpha(0.01, 4) == pytest.approx(0.0025)
    assert selection_alpha(0.01, 0) == 0.01
    assert permutations_for(0.001, 10_000) == 10_000  # 10 / 0.001 - 1 is covered already
    assert permutations_for(0.0001, 10_000) == 99_999
    assert permutations_for(1e-9, 10_000) == 200_000  # capped


def test_an_open_alert_stays_open_until_clearly_recovered() -> None:
    before = np.ones(1000)
    for lost, expected in ((20, True), (6, True), (4, False)):
        after = before.copy()
        after[:lost] = 0.0
        verdict = decide(before, after, min_drop=0.01, alpha=0.01, permutations=2_000)
        assert still_regressed(verdict, 0.2) is expected, lost
    noisy = np.ones(1000)
    noisy[:20] = 0.0
    noisy_after = noisy.copy()
    noisy_after[20:30] = 0.0  # 10 lost ...
    noisy_after[:8] = 1.0  # ... and 8 gained: a 0.2-point drop, p far above 0.2
    verdict = decide(noisy, noisy_after, min_drop=0.001, alpha=0.01, permutations=2_000)
    assert verdict.test.p_value > 0.2 and not still_regressed(verdict, 0.2)
