"""Tests of recallwatch.stats.sequential: the SPRT and the fixed-size binomial test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recallwatch.stats import (
    SPRTDesign,
    fixed_sample_test,
    sprt_path,
    sprt_run,
    sprt_update,
)


def test_sprt_design_thresholds_and_validation() -> None:
    d = SPRTDesign()
    assert d.upper == pytest.approx(math.log(19))
    assert d.lower == pytest.approx(-math.log(19))
    for bad in ({"p0": 0.1, "p1": 0.05}, {"alpha": 0.0}, {"beta": 0.6}, {"max_labels": 0}):
        with pytest.raises(ValueError):
            SPRTDesign(**bad)  # type: ignore[arg-type]


def test_sprt_path_and_run_agree() -> None:
    rng = np.random.default_rng(3)
    d = SPRTDesign()
    for p in (0.02, 0.05, 0.075, 0.1, 0.2):
        x = rng.random(2000) < p
        path = sprt_path(list(x), d)
        run = sprt_run(x, d)
        assert (path[-1].decision, path[-1].labels, path[-1].false_negatives) == (
            run.decision,
            run.labels,
            run.false_negatives,
        )
        assert path[-1].llr == pytest.approx(run.llr)
        assert all(s.decision == "continue" for s in path[:-1])


def test_sprt_step_by_step() -> None:
    d = SPRTDesign()
    state = sprt_update(None, True, d)
    assert (state.labels, state.false_negatives, state.decision) == (1, 1, "continue")
    # Ten false negatives in a row: log(2) each, past log(19) at the fifth.
    for _ in range(9):
        state = sprt_update(state, True, d)
    assert state.decision == "too_high" and state.labels == 5
    assert sprt_update(state, False, d) is state  # a decided test does not move


def test_sprt_truncation_and_empty() -> None:
    d = SPRTDesign(max_labels=10)
    assert sprt_run(np.zeros(0, dtype=bool), d).decision == "continue"
    between = ([True] + [False] * 13) * 3  # about 7%: neither hypothesis after 10 labels
    assert sprt_run(np.array(between), d).decision == "undecided"
    assert sprt_path(between, d)[-1].labels == 10


def test_fixed_sample_test_is_smallest_with_its_error_rates() -> None:
    t = fixed_sample_test(0.05, 0.10, 0.05, 0.05)
    assert (t.n, t.critical) == (298, 22)
    assert t.alpha <= 0.05 and t.beta <= 0.05
    stats = pytest.importorskip("scipy.stats")
    assert stats.binom.sf(t.critical - 1, t.n, 0.05) == pytest.approx(t.alpha)
    assert stats.binom.cdf(t.critical - 1, t.n, 0.10) == pytest.approx(t.beta)
    # One label fewer cannot meet both error rates with any critical value.
    n = t.n - 1
    ok = [
        stats.binom.sf(c - 1, n, 0.05) <= 0.05 and stats.binom.cdf(c - 1, n, 0.10) <= 0.05
        for c in range(n + 1)
    ]
    assert not any(ok)
