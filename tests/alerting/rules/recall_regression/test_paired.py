"""The paired test of two checkpoints: the verdict, the randomisation p-value, the hysteresis."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recallwatch.alerting.rules.recall_regression.paired import paired_regression_test as decide
from recallwatch.stats import paired_randomisation_pvalues, paired_randomisation_test


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


def test_an_open_alert_stays_open_until_clearly_recovered() -> None:
    before = np.ones(1000)
    for lost, expected in ((20, True), (6, True), (4, False)):
        after = before.copy()
        after[:lost] = 0.0
        verdict = decide(before, after, min_drop=0.01, alpha=0.01, permutations=2_000)
        assert verdict.still_regressed(0.2) is expected, lost
    noisy = np.ones(1000)
    noisy[:20] = 0.0
    noisy_after = noisy.copy()
    noisy_after[20:30] = 0.0  # 10 lost ...
    noisy_after[:8] = 1.0  # ... and 8 gained: a 0.2-point drop, p far above 0.2
    verdict = decide(noisy, noisy_after, min_drop=0.001, alpha=0.01, permutations=2_000)
    assert verdict.test.p_value > 0.2 and not verdict.still_regressed(0.2)
