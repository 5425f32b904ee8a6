"""Tests of recallwatch.stats.intervals: Wilson, stratified, ratio and mean intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recallwatch.stats import (
    Interval,
    ratio_interval,
    sample_size_for_half_width,
    stratified_interval,
    wilson_half_width,
    wilson_interval,
    z_value,
)
from tests.helpers.mining import strict_json


@pytest.mark.parametrize(
    ("x", "n"), [(0, 1), (0, 10), (1, 10), (3, 100), (50, 100), (99, 100), (100, 100), (7, 1234)]
)
def test_wilson_matches_scipy(x: int, n: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    ref = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson_interval(x, n)
    assert got.estimate == pytest.approx(x / n)
    assert got.lower == pytest.approx(ref.low, abs=1e-12)
    assert got.upper == pytest.approx(ref.high, abs=1e-12)


def test_wilson_known_value_and_confidence() -> None:
    # 3 of 100: the textbook Wilson interval [1.03%, 8.45%].
    i = wilson_interval(3, 100)
    assert (round(i.lower, 4), round(i.upper, 4)) == (0.0103, 0.0845)
    assert wilson_interval(3, 100, confidence=0.99).half_width > i.half_width
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_wilson_finite_population_correction() -> None:
    plain = wilson_interval(10, 100)
    corrected = wilson_interval(10, 100, population=200)
    assert corrected.half_width < plain.half_width
    assert wilson_interval(10, 100, population=10**9).half_width == pytest.approx(
        plain.half_width, rel=1e-6
    )
    exact = wilson_interval(10, 100, population=100)
    assert exact.lower == exact.upper == 0.1


@pytest.mark.parametrize(
    ("x", "n", "population", "message"),
    [(1, 0, None, "at least one trial"), (5, 4, None, "between"), (1, 10, 5, "larger")],
)
def test_wilson_rejects_bad_counts(x: int, n: int, population: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(x, n, population=population)


@pytest.mark.parametrize(
    ("half_width", "rate", "population"),
    [(0.025, 0.5, None), (0.025, 0.1, None), (0.05, 0.05, None), (0.025, 0.5, 1000)],
)
def test_sample_size_for_half_width_is_the_smallest(
    half_width: float, rate: float, population: int | None
) -> None:
    n = sample_size_for_half_width(half_width, assumed_rate=rate, population=population)

    def hw(k: int) -> float:
        if population is None:
            return wilson_half_width(rate, k)
        return wilson_half_width(rate, k * (population - 1) / (population - k))

    assert hw(n) <= half_width < hw(n - 1)


def test_sample_size_worst_case_and_cap() -> None:
    assert sample_size_for_half_width(0.025) == 1533  # Wilson's; Wald's classic 1537
    assert sample_size_for_half_width(0.01, population=300) <= 300


def test_stratified_single_stratum_is_close_to_wilson() -> None:
    est = stratified_interval([12], [200], [10**7], pseudo_count=0.0)
    ref = wilson_interval(12, 200)
    assert est.interval.estimate == pytest.approx(ref.estimate)
    assert est.interval.lower == pytest.approx(ref.lower, rel=1e-3)
    assert est.interval.upper == pytest.approx(ref.upper, rel=1e-3)
    assert est.effective_n == pytest.approx(200, rel=1e-3)


def test_stratified_weights_strata_by_population() -> None:
    # 50% in a stratum of 100 negatives, 0% in one of 900: 5% overall, whatever the sample sizes.
    est = stratified_interval([10, 0], [20, 200], [100, 900])
    assert est.interval.estimate == pytest.approx(0.05)
    assert est.interval.lower < 0.05 < est.interval.upper


def test_stratified_full_census_is_exact() -> None:
    est = stratified_interval([1, 2], [10, 20], [10, 20])
    assert est.interval.lower == est.interval.upper == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("x", "n", "size", "message"),
    [
        ([0], [0], [10], "at least one trial"),
        ([3], [2], [10], "successes"),
        ([1], [20], [10], "exceed"),
        ([0], [0], [0], "empty"),
    ],
)
def test_stratified_rejects_bad_input(
    x: list[int], n: list[int], size: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_interval(x, n, size)


def test_ratio_interval_katz() -> None:
    # Katz: log(0.1/0.02) +- 1.96 * sqrt(1/20 - 1/200 + 1/10 - 1/500)
    i = ratio_interval(20, 200, 10, 500)
    se = math.sqrt(1 / 20 - 1 / 200 + 1 / 10 - 1 / 500)
    assert i.estimate == pytest.approx(5.0)
    assert i.lower == pytest.approx(5.0 * math.exp(-z_value(0.95) * se))
    assert i.upper == pytest.approx(5.0 * math.exp(z_value(0.95) * se))


def test_ratio_interval_zero_counts() -> None:
    no_control_fn = ratio_interval(20, 400, 0, 400)
    assert math.isinf(no_control_fn.estimate)
    # No control false negative: unbounded above (the estimate must lie inside its interval).
    assert no_control_fn.lower > 1.0 and no_control_fn.upper == math.inf
    no_mined_fn = ratio_interval(0, 400, 5, 400)
    assert no_mined_fn.estimate == 0.0 and no_mined_fn.lower == 0.0
    assert no_control_fn.as_dict()["estimate"] is None


def test_ratio_interval_coverage() -> None:
    rng = np.random.default_rng(7)
    p_a, p_b, n_a, n_b = 0.08, 0.02, 400, 600
    xa = rng.binomial(n_a, p_a, 2000)
    xb = rng.binomial(n_b, p_b, 2000)
    covered = [
        ratio_interval(a, n_a, b, n_b).contains(p_a / p_b) for a, b in zip(xa, xb, strict=True)
    ]
    assert 0.93 <= float(np.mean(covered)) <= 0.98


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb", "estimate", "lower_positive", "upper"),
    [
        (5, 100, 0, 100, math.inf, True, math.inf),
        (0, 100, 0, 100, math.nan, False, math.inf),
        (40, 400, 10, 500, 5.0, True, None),  # an ordinary ratio: finite upper bound
        (0, 100, 5, 100, 0.0, False, None),
    ],
)
def test_ratio_interval_contains_its_estimate(
    xa: int,
    na: int,
    xb: int,
    nb: int,
    estimate: float,
    lower_positive: bool,
    upper: float | None,
) -> None:
    r = ratio_interval(xa, na, xb, nb)
    if math.isnan(estimate):
        assert math.isnan(r.estimate)
    else:
        assert r.estimate == pytest.approx(estimate)
        assert r.lower <= r.estimate <= r.upper
    assert (r.lower > 0) is lower_positive
    if upper is None:
        assert math.isfinite(r.upper)
    else:
        assert r.upper == upper
    text = json.dumps(r.as_dict())
    doc = strict_json(text)
    assert isinstance(doc, dict)
    for key in ("estimate", "upper"):
        value = getattr(r, key)
        if not math.isfinite(value):
            assert doc[key] is None and doc["non_finite"][key] == str(value)
    if math.isfinite(r.estimate) and math.isfinite(r.upper):
        assert "non_finite" not in doc


def test_interval_json_without_infinities_is_unchanged() -> None:
    assert Interval(0.1, 0.05, 0.2).as_dict() == {
        "estimate": 0.1,
        "lower": 0.05,
        "upper": 0.2,
        "confidence": 0.95,
    }


def test_stratified_intervals_match_the_scalar_one_row_by_row() -> None:
    from recallwatch.stats import stratified_intervals

    rows = [([1, 3, 0], [10, 50, 40], [20, 500, 4000]), ([0, 0, 0], [5, 5, 5], [5, 50, 50])]
    rows += [([2, 4], [10, 20], [10, 20]), ([9, 1], [10, 30], [100, 300])]
    width = 3
    pad = [
        (x + [0] * (width - len(x)), n + [0] * (width - len(n)), s + [0] * (width - len(s)))
        for x, n, s in rows
    ]
    est, lo, hi, var, eff = stratified_intervals(
        np.array([p[0] for p in pad]), np.array([p[1] for p in pad]), np.array([p[2] for p in pad])
    )
    for i, (x, n, size) in enumerate(rows):
        one = stratified_interval(x, n, size)
        assert (est[i], lo[i], hi[i]) == pytest.approx(
            (one.interval.estimate, one.interval.lower, one.interval.upper)
        )
        assert var[i] == pytest.approx(one.variance) and eff[i] == one.effective_n
