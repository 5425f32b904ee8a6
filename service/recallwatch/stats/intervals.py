"""Intervals for proportions, ratios and means.

- the Wilson score interval (with a finite-population correction), the sample size that reaches a
  target half-width, and the stratified (bucket-weighted) estimate;
- the ratio of two proportions (label-noise amplification), on the log scale;
- the normal interval of a mean (per-query differences).

Plain functions over numbers or numpy arrays: no I/O, no clock, no globals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

#: for rates of 0.2-25%, 5-6 buckets and 150-1,200 labels with proportional allocation (equal
#: allocation with low-rate deep buckets dominating the weight can fall to ~93%);
#: tests/mining/test_simulation.py checks the default scenario over 1,000 seeds.
STRATUM_PSEUDO_COUNT = 0.25


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    lower: float
    upper: float
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        """Half the width of the interval."""
        return (self.upper - self.lower) / 2

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the closed interval."""
        return self.lower <= value <= self.upper

    def as_dict(self) -> dict[str, float | dict[str, str] | None]:
        """Return a JSON-friendly dict: strict JSON, with no ``Infinity`` or ``NaN`` literal.

        A value that is not finite (an unbounded ratio: ``inf``; an undefined one: ``nan``)
        becomes ``null``, and a ``"non_finite"`` object then says which and what it was, e.g.
        ``{"estimate": null, "upper": null, "non_finite": {"estimate": "inf", "upper": "inf"}}``.
        The key is absent when every value is finite.
        """
        values = {"estimate": self.estimate, "lower": self.lower, "upper": self.upper}
        out: dict[str, float | dict[str, str] | None] = {
            k: (v if math.isfinite(v) else None) for k, v in values.items()
        }
        out["confidence"] = self.confidence
        non_finite = {k: str(v) for k, v in values.items() if not math.isfinite(v)}
        if non_finite:
            out["non_finite"] = non_finite
        return out


def z_value(confidence: float) -> float:
    """Return the two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


# --------------------------------------------------------------------------------- proportions


def _wilson_bounds(p: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _fpc_effective_n(trials: int, population: int | None) -> float:
    """Sample size inflated by the finite-population correction (sampling without replacement)."""
    if population is None:
        return float(trials)
    if population < trials:
        raise ValueError(f"the sample ({trials}) is larger than its population ({population})")
    if population == trials:
        return math.inf
    return trials * (population - 1) / (population - trials)


def wilson_interval(
    successes: int,
    trials: int,
    *,
    confidence: float = 0.95,
    population: int | None = None,
) -> Interval:
    """Wilson score interval of a proportion (finite-population corrected given ``population``)."""
    if trials <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and {trials}, got {successes}")
    p = successes / trials
    n_eff = _fpc_effective_n(trials, population)
    if math.isinf(n_eff):  # the whole population was judged: the rate is known exactly
        return Interval(p, p, p, confidence)
    lo, hi = _wilson_bounds(p, n_eff, z_value(confidence))
    return Interval(p, min(lo, p), max(hi, p), confidence)


def wilson_half_width(rate: float, trials: float, *, confidence: float = 0.95) -> float:
    """Half-width of the Wilson interval at an observed ``rate`` with ``trials`` trials."""
    lo, hi = _wilson_bounds(rate, trials, z_value(confidence))
    return (hi - lo) / 2


def sample_size_for_half_width(
    half_width: float,
    *,
    assumed_rate: float = 0.5,
    confidence: float = 0.95,
    population: int | None = None,
) -> int:
    """Smallest sample whose Wilson interval at ``assumed_rate`` is at most ``half_width`` wide.

    ``assumed_rate`` 0.5 is the worst case (the widest interval); a smaller plausible rate needs
    fewer labels. With ``population``, the finite-population correction applies and the answer
    never exceeds the population.
    """
    if not 0.0 < half_width < 0.5:
        raise ValueError(f"half_width must be between 0 and 0.5, got {half_width}")
    if not 0.0 <= assumed_rate <= 1.0:
        raise ValueError(f"assumed_rate must be between 0 and 1, got {assumed_rate}")

    def ok(n: int) -> bool:
        n_eff = _fpc_effective_n(n, population)
        return math.isinf(n_eff) or wilson_half_width(
            assumed_rate, n_eff, confidence=confidence
        ) <= (half_width)

    hi = 1
    cap = population if population is not None else 10**9
    while not ok(min(hi, cap)):
        if hi >= cap:
            return cap
        hi *= 2
    hi = min(hi, cap)
    lo = 1
    while lo < hi:  # the half-width shrinks monotonically with n
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class StratifiedEstimate:
    """A bucket-weighted rate with its interval and the sample size it is worth."""

    interval: Interval
    #: Variance of the estimate (with the pseudo-count adjustment).
    variance: float
    #: Simple-random-sample size with the same variance, used for the Wilson-type interval.
    effective_n: float


def stratified_interval(
    successes: Sequence[int] | npt.NDArray[np.integer],
    trials: Sequence[int] | npt.NDArray[np.integer],
    sizes: Sequence[int] | npt.NDArray[np.integer],
    *,
    confidence: float = 0.95,
    pseudo_count: float = STRATUM_PSEUDO_COUNT,
) -> StratifiedEstimate:
    """Stratified estimate sum(W_h p_h) with a Wilson interval on its effective sample size.

    ``sizes`` are the population sizes of the strata (W_h = N_h / N); each stratum with a
    population needs at least one trial. The variance uses the finite-population correction per
    stratum and ``pseudo_count`` (see ``STRATUM_PSEUDO_COUNT``); the interval is Wilson's at the
    effective sample size p(1 - p) / variance, the usual design-effect adjustment for surveys.
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    size = np.asarray(sizes, dtype=np.float64)
    if not (x.shape == n.shape == size.shape) or x.ndim != 1:
        raise ValueError("successes, trials and sizes must be 1-D sequences of the same length")
    if (x < 0).any() or (x > n).any():
        raise ValueError("each stratum needs 0 <= successes <= trials")
    if (n > size).any():
        raise ValueError("a stratum's trials exceed its population size")
    live = size > 0
    if not live.any():
        raise ValueError("every stratum is empty")
    if (n[live] <= 0).any():
        raise ValueError("every non-empty stratum needs at least one trial")
    est, lo, hi, variance, effective_n = stratified_intervals(
        x[None, :], n[None, :], size[None, :], confidence=confidence, pseudo_count=pseudo_count
    )
    return StratifiedEstimate(
        Interval(float(est[0]), float(lo[0]), float(hi[0]), confidence),
        float(variance[0]),
        float(effective_n[0]),
    )


StratifiedArrays = tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]


def stratified_intervals(
    successes: npt.NDArray[np.floating] | npt.NDArray[np.integer],
    trials: npt.NDArray[np.floating] | npt.NDArray[np.integer],
    sizes: npt.NDArray[np.floating] | npt.NDArray[np.integer],
    *,
    confidence: float = 0.95,
    pseudo_count: float = STRATUM_PSEUDO_COUNT,
) -> StratifiedArrays:
    """``stratified_interval`` for many estimates at once: one per row of (rows x strata) arrays.

    Returns ``(estimate, lower, upper, variance, effective_n)``, one value per row. Strata with
    ``sizes`` 0 are ignored; every other stratum needs at least one trial (merge empty ones
    first). A row whose strata are all fully judged (or whose population is empty: NaN) has a
    zero-width interval and an infinite effective size. No validation: the scalar
    ``stratified_interval`` checks its input and calls this.
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    size = np.asarray(sizes, dtype=np.float64)
    live = size > 0
    total = size.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(live, size / total[:, None], 0.0)
        p_h = np.where(live, x / n, 0.0)
        p = np.clip((weight * p_h).sum(axis=1), 0.0, 1.0)
        adjusted = (x + pseudo_count) / (n + 2 * pseudo_count)
        fpc = np.where(live, 1.0 - n / size, 0.0)
        terms = np.where(live, weight**2 * fpc * adjusted * (1 - adjusted) / n, 0.0)
    variance = terms.sum(axis=1)
    exact = variance <= 0.0
    safe_var = np.where(exact, 1.0, variance)
    inner = (p > 0.0) & (p < 1.0)
    # No event anywhere (or only events): p(1-p) is 0, so fall back to the sample size, capped
    # by what the variance says the sample is worth.
    effective_n = np.where(
        inner,
        p * (1 - p) / safe_var,
        np.minimum(np.where(live, n, 0.0).sum(axis=1), 0.25 / safe_var),
    )
    effective_n = np.maximum(effective_n, 1.0)
    z = z_value(confidence)
    z2 = z * z
    denom = 1.0 + z2 / effective_n
    centre = (p + z2 / (2 * effective_n)) / denom
    half = (
        z
        / denom
        * np.sqrt(np.maximum(p * (1 - p), 0.0) / effective_n + z2 / (4 * effective_n * effective_n))
    )
    lower = np.where(exact, p, np.minimum(np.maximum(0.0, centre - half), p))
    upper = np.where(exact, p, np.maximum(np.minimum(1.0, centre + half), p))
    effective_n = np.where(exact, np.inf, effective_n)
    return p, lower, upper, np.where(exact, 0.0, variance), effective_n


# --------------------------------------------------------------------------------------- ratios


def ratio_interval(
    successes_a: float,
    trials_a: float,
    successes_b: float,
    trials_b: float,
    *,
    confidence: float = 0.95,
) -> Interval:
    """Interval of the ratio of two independent proportions (a / b), Katz's log method.

    Counts may be effective (fractional) counts, e.g. from a stratified estimate. When a count is
    zero (or equals its trials), 0.5 is added to events and non-events of both groups (Haldane's
    correction) for the interval; the point estimate stays the plain ratio. When b's rate is zero
    the ratio is unbounded: the estimate and the upper bound are ``inf`` (only the lower bound is
    informative), and with a's rate zero too the estimate is undefined (``nan``) and the interval
    is [0, inf]. The interval always contains a finite estimate.
    """
    for name, x, n in (("a", successes_a, trials_a), ("b", successes_b, trials_b)):
        if n <= 0:
            raise ValueError(f"group {name} needs at least one trial")
        if not 0 <= x <= n:
            raise ValueError(f"group {name} needs 0 <= successes <= trials")
    p_a = successes_a / trials_a
    p_b = successes_b / trials_b
    if p_b == 0:
        estimate = math.nan if p_a == 0 else math.inf
    else:
        estimate = p_a / p_b
    xa, na, xb, nb = successes_a, trials_a, successes_b, trials_b
    if min(xa, xb) == 0 or xa == na or xb == nb:
        xa, na, xb, nb = xa + 0.5, na + 1.0, xb + 0.5, nb + 1.0
    log_ratio = math.log((xa / na) / (xb / nb))
    se = math.sqrt(max(1 / xa - 1 / na + 1 / xb - 1 / nb, 0.0))
    z = z_value(confidence)
    lower = math.exp(log_ratio - z * se)
    upper = math.exp(log_ratio + z * se)
    if p_a == 0:
        lower = 0.0
    if p_b == 0:  # nothing bounds the ratio from above
        upper = math.inf
    if math.isfinite(estimate):  # Haldane's correction can shift the interval off the estimate
        lower, upper = min(lower, estimate), max(upper, estimate)
    return Interval(estimate, lower, upper, confidence)


def mean_interval(
    values: npt.NDArray[np.float64],
    *,
    confidence: float = 0.95,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Interval:
    """Mean of per-query values with a normal (CLT, sample sd) interval clipped to ``bounds``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("an interval needs at least one value")
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    half = z_value(confidence) * sd / math.sqrt(v.size)
    lo, hi = bounds
    return Interval(mean, max(lo, mean - half), min(hi, mean + half), confidence)
