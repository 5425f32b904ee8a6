"""Prediction-powered rates: equal to ppi-python's, and the reported interval's coverage.

The simulation plants a finite population of negatives with a known false-negative rate, draws a
uniform audit sample of 400 without replacement, has a judge of a given accuracy label all of it
(symmetric errors) and people label the first ``n`` (the review order is random). Every seed is
one row of numpy arrays, so 1,500 seeds per cell run in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

from recallwatch.stats.ppi import ppi_batch, ppi_rate, ppi_stratified, ppi_wilson_batch

SEEDS = 1500
SAMPLE = 400
POPULATION = 20_000
ACCURACIES = (0.70, 0.85, 0.95)
LABELS = (30, 50, 100, 200)
RATES = (0.05, 0.10, 0.20)


def _fixture(seed: int, n: int = 40, big_n: int = 300) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(float)
    f = np.where(rng.random(n) < 0.85, y, 1 - y)
    fu = (rng.random(big_n) < 0.25).astype(float)
    return y, f, fu


@pytest.mark.parametrize("seed", range(6))
def test_equals_ppi_python_without_a_finite_population(seed: int) -> None:
    y, f, fu = _fixture(seed)
    b = ppi_batch(y, f, fu)
    assert b.estimate[0] == pytest.approx(float(ppi_mean_pointestimate(y, f, fu)[0]), abs=1e-12)
    lo, hi = ppi_mean_ci(y, f, fu, alpha=0.05)
    mine_lo, mine_hi = b.bounds(0.95)
    # ppi_py does not clip to [0, 1]; these fixtures stay inside it.
    assert mine_lo[0] == pytest.approx(float(lo[0]), abs=1e-12)
    assert mine_hi[0] == pytest.approx(float(hi[0]), abs=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_fixed_lambda_equals_ppi_python(lam: float) -> None:
    y, f, fu = _fixture(11)
    b = ppi_batch(y, f, fu, lam=lam)
    assert b.estimate[0] == pytest.approx(float(ppi_mean_pointestimate(y, f, fu, lam=lam)[0]))
    lo, hi = ppi_mean_ci(y, f, fu, alpha=0.1, lam=lam)
    mine_lo, mine_hi = b.bounds(0.9)
    assert (mine_lo[0], mine_hi[0]) == pytest.approx((float(lo[0]), float(hi[0])))


def test_finite_population_subtracts_the_label_variance_over_m() -> None:
    y, f, fu = _fixture(3)
    big_m = 2_000
    free, finite = ppi_batch(y, f, fu), ppi_batch(y, f, fu, population=big_m)
    assert finite.lam[0] == pytest.approx(free.lam[0])
    assert finite.estimate[0] == pytest.approx(free.estimate[0])
    assert finite.variance[0] == pytest.approx(free.variance[0] - y.var(ddof=1) / big_m)


def test_a_census_of_people_labels_is_exact() -> None:
    y = np.array([1.0, 0, 0, 1, 0, 0, 0, 0])
    r = ppi_rate(y, y, np.array([0.0]), population=len(y))
    assert r.people_only.lower == r.people_only.upper == pytest.approx(0.25)


def test_tuned_interval_is_never_wider_than_people_only() -> None:
    rng = np.random.default_rng(7)
    for acc in ACCURACIES:
        y, f = _simulate(rng, 0.1, acc, POPULATION)
        for n in LABELS:
            normal = ppi_batch(y[:, :n], f[:, :n], f[:, n:], population=POPULATION)
            assert (normal.variance <= normal.classical_variance + 1e-15).all()
            shown = ppi_wilson_batch(y[:, :n], f[:, :n], f[:, n:], population=POPULATION)
            width = shown.upper - shown.lower
            assert (width <= shown.people_upper - shown.people_lower + 1e-12).all()


def _simulate(
    rng: np.random.Generator, rate: float, accuracy: float, population: int
) -> tuple[np.ndarray, np.ndarray]:
    """(seeds x sample) people's truth and the judge's labels, rows in review order."""
    k = round(rate * population)
    x = rng.hypergeometric(k, population - k, SAMPLE, size=SEEDS)
    base = (np.arange(SAMPLE)[None, :] < x[:, None]).astype(float)
    y = rng.permuted(base, axis=1)
    f = np.where(rng.random(y.shape) < accuracy, y, 1 - y)
    return y, f


def coverage_table(
    rates: tuple[float, ...] = RATES, population: int = POPULATION
) -> list[dict[str, float]]:
    """Coverage and mean widths per (rate, judge accuracy, people's labels)."""
    rows = []
    for rate in rates:
        truth = round(rate * population) / population
        for acc in ACCURACIES:
            rng = np.random.default_rng([int(rate * 1000), int(acc * 100), population])
            y, f = _simulate(rng, rate, acc, population)
            judge_only = f.mean(axis=1)
            for n in LABELS:
                r = ppi_wilson_batch(y[:, :n], f[:, :n], f[:, n:], population=population)
                rows.append(
                    {
                        "rate": rate,
                        "accuracy": acc,
                        "labels": n,
                        "coverage": float(((r.lower <= truth) & (truth <= r.upper)).mean()),
                        "people_coverage": float(
                            ((r.people_lower <= truth) & (truth <= r.people_upper)).mean()
                        ),
                        "width": float((r.upper - r.lower).mean()),
                        "people_width": float((r.people_upper - r.people_lower).mean()),
                        "judge_bias": float(judge_only.mean() - truth),
                    }
                )
    return rows


def test_coverage_is_nominal_and_width_shrinks_with_the_judge() -> None:
    rows = coverage_table()
    for row in rows:
        assert abs(row["coverage"] - 0.95) <= 0.02, row
        assert row["width"] <= row["people_width"] + 1e-12, row
    for rate in RATES:
        for n in LABELS:
            widths = [
                r["width"] for r in rows if r["rate"] == rate and r["labels"] == n
            ]  # in ACCURACIES order
            assert widths == sorted(widths, reverse=True), (rate, n, widths)


def test_coverage_holds_in_a_small_population() -> None:
    """A population of 1,000 with a sample of 400: the correction matters and stays valid."""
    for row in coverage_table(rates=(0.1,), population=1_000):
        assert abs(row["coverage"] - 0.95) <= 0.02, row


def test_strata_combine_by_weight() -> None:
    a = ppi_rate(*_fixture(1), population=5_000)
    b = ppi_rate(*_fixture(2), population=15_000)
    ppi, people = ppi_stratified([a, b], [5_000, 15_000])
    assert ppi.estimate == pytest.approx(0.25 * a.interval.estimate + 0.75 * b.interval.estimate)
    assert people.estimate == pytest.approx(
        0.25 * a.people_only.estimate + 0.75 * b.people_only.estimate
    )
    assert ppi.upper - ppi.lower <= people.upper - people.lower


if __name__ == "__main__":  # the table of docs/fn-rate.md
    print(
        "| FN rate | judge accuracy | people's labels | PPI coverage | people-only coverage |"
        " PPI mean width | people-only mean width | judge-only bias |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in coverage_table():
        print(
            f"| {r['rate']:.0%} | {r['accuracy']:.0%} | {r['labels']} | {r['coverage']:.3f} | "
            f"{r['people_coverage']:.3f} | {r['width']:.3f} | {r['people_width']:.3f} | "
            f"{r['judge_bias']:+.3f} |"
        )
