"""Mining segments and baselines: which checkpoint a new one is compared with."""

from __future__ import annotations

import pytest

from recallwatch.alerting.rules.recall_regression.paired import permutations_for, selection_alpha
from recallwatch.alerting.rules.recall_regression.segments import (
    CheckpointSummary,
    choose_baseline,
    mining_segments,
)


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
