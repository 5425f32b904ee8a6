"""The level decision: which checkpoints are compared, the verdict, and its vectorised twin."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.alerting.rules.recall_regression.level import (
    aligned_values,
    decide_level,
    level_decisions,
    level_plan,
    level_regression_test,
    look_alpha,
)
from recallwatch.alerting.rules.recall_regression.segments import CheckpointSummary, choose_baseline
from recallwatch.stats.hierarchical import checkpoint_variance, sequential_levels


def ck(i: int, fp: str | None, value: float | None) -> CheckpointSummary:
    return CheckpointSummary(i, f"checkpoint-{i * 100}", i * 100, fp, value)


# A: 1 2 3 | B: 4 5 | C: 6 (7) 8: checkpoint 7 has no value
HISTORY = [
    ck(1, "A", 0.70),
    ck(2, "A", 0.74),
    ck(3, "A", 0.72),
    ck(4, "B", 0.65),
    ck(5, "B", 0.66),
    ck(6, "C", 0.60),
    ck(7, "C", None),
    ck(8, "C", 0.61),
]


def ids(cs: tuple[CheckpointSummary, ...]) -> list[int]:
    return [c.id for c in cs]


def test_previous_mining_compares_segment_levels_and_is_sequential() -> None:
    current = HISTORY[4]
    baseline = choose_baseline(HISTORY, current)
    assert baseline is not None
    plan = level_plan(HISTORY, current, baseline)
    assert (ids(plan.pre), ids(plan.post), plan.sequential, plan.look) == (
        [1, 2, 3],
        [4, 5],
        True,
        2,
    )
    assert [ids(g) for g in plan.groups] == [[1, 2, 3]]  # never the post checkpoints
    later = level_plan(HISTORY, HISTORY[7], choose_baseline(HISTORY, HISTORY[7]))  # type: ignore[arg-type]
    assert (ids(later.pre), ids(later.post)) == ([4, 5], [6, 8])
    assert [ids(g) for g in later.groups] == [[1, 2, 3], [4, 5]]
    assert [c.id for c in later.checkpoints] == [4, 5, 6, 8, 1, 2, 3]


def test_same_mining_and_pinned_compare_one_checkpoint() -> None:
    same = choose_baseline(HISTORY, HISTORY[2], compare_with="same_mining")
    assert same is not None
    plan = level_plan(HISTORY, HISTORY[2], same)
    assert (ids(plan.pre), ids(plan.post), plan.sequential) == ([1, 2], [3], False)
    assert [ids(g) for g in plan.groups] == [[1, 2]]
    pinned = choose_baseline(HISTORY, HISTORY[5], pinned="checkpoint-100")
    assert pinned is not None
    plan = level_plan(HISTORY, HISTORY[5], pinned)
    assert (ids(plan.pre), ids(plan.post), plan.sequential) == ([1], [6], False)


def test_look_levels() -> None:
    assert look_alpha(0.01, 3, sequential=False) == (0.01, 0.01)
    early, late = sequential_levels(0.01, 3)
    assert look_alpha(0.01, 3, sequential=True, look=1) == (early, early)
    assert look_alpha(0.01, 3, sequential=True, look=5) == (late, 0.0)


def test_aligned_values_keep_the_common_queries_in_the_first_ones_order() -> None:
    got = aligned_values([{"a": 1.0, "b": 0.0, "c": 1.0}, {"c": 0.5, "a": 0.0}])
    assert got.tolist() == [[1.0, 1.0], [0.0, 0.5]]
    assert aligned_values([]).shape == (0, 0)


def hits(n: int, miss: int, shift: int = 0) -> np.ndarray:
    h = np.ones(n)
    h[shift : shift + miss] = 0.0
    return h


def test_a_clear_drop_is_regressed_and_says_what_it_assumed() -> None:
    variance = checkpoint_variance([], prior_sd=0.01, prior_df=4.0)
    pre = np.stack([hits(300, 50), hits(300, 52, 3)])
    v = level_regression_test(pre, hits(300, 80)[None], variance, alpha=0.005)
    assert v.regressed and v.significant and v.large_enough and v.latest_holds
    assert v.drop == pytest.approx(29 / 300)  # (250 + 248) / 2 hits before, 220 after
    assert v.difference.lower < v.difference.estimate < v.difference.upper < 0
    d = v.as_dict()
    assert d["test"] == "level" and d["level"]["checkpoint_variance"]["prior_sd"] == 0.01
    assert v.still_regressed(0.2)
    # The same drop, but the run's own checkpoints differ by 10 points: not significant.
    noisy = checkpoint_variance(
        [np.stack([hits(300, 20), hits(300, 50)])], prior_sd=0.01, prior_df=1
    )
    assert not level_regression_test(pre, hits(300, 80)[None], noisy, alpha=0.005).regressed


def test_a_clean_latest_checkpoint_opens_nothing_and_resolves() -> None:
    variance = checkpoint_variance([], prior_sd=0.01, prior_df=4.0)
    pre = hits(300, 50)[None]
    # Cumulatively 5 points down, but the latest checkpoint is back at the pre level.
    v = level_regression_test(pre, np.stack([hits(300, 80), hits(300, 50)]), variance, alpha=0.01)
    assert v.significant and v.large_enough and not v.latest_holds and not v.regressed
    assert not v.still_regressed(0.2)


def test_decide_level_from_per_query_maps() -> None:
    values = {
        c.id: {f"q{i}": float(x) for i, x in enumerate(hits(300, miss))}
        for c, miss in zip(HISTORY[:5], (50, 52, 51, 80, 79), strict=True)
    }
    current = HISTORY[4]
    baseline = choose_baseline(HISTORY, current)
    assert baseline is not None
    plan = level_plan(HISTORY, current, baseline)
    v = decide_level(
        plan, values, alpha=0.01, min_drop=0.01, resolve_alpha=0.2, prior_sd=0.01, prior_df=4.0
    )
    assert v is not None and v.regressed
    assert (v.level.pre, v.level.post, v.level.variance.data_df) == (3, 2, 2)
    assert v.alpha == look_alpha(0.01, 3, sequential=True, look=2)[0]
    empty = {c.id: {} for c in HISTORY[:5]}
    assert (
        decide_level(
            plan, empty, alpha=0.01, min_drop=0.01, resolve_alpha=0.2, prior_sd=0.01, prior_df=4.0
        )
        is None
    )


def test_the_vectorised_decisions_equal_the_verdicts() -> None:
    rng = np.random.default_rng(4)
    pre = (rng.random((40, 3, 200)) < 0.7).astype(float)
    post = (rng.random((40, 2, 200)) < rng.uniform(0.55, 0.72, (40, 1, 1))).astype(float)
    variance = checkpoint_variance([], prior_sd=0.01, prior_df=4.0)
    batch = level_decisions(
        pre,
        post,
        variance.sd**2,
        variance.df,
        min_drop=0.01,
        alpha=0.004,
        latest_alpha=0.003,
        resolve_alpha=0.2,
    )
    one_by_one = [
        level_regression_test(
            pre[i], post[i], variance, alpha=0.004, latest_alpha=0.003, resolve_alpha=0.2
        ).regressed
        for i in range(40)
    ]
    assert batch.tolist() == one_by_one
    assert 0 < sum(one_by_one) < 40
