"""The pre-change climb: the level a climbing run had reached when its mining changed.

The level test (``level``) compares the post-change checkpoints with a *pre level*. The mean of
the pre-change segment sits below where a climbing run had got to, and a mining change made
mid-climb can cost several points against the last pre-change checkpoint without an alert
(issue 25). For a mining change with at least ``MIN_TREND_CHECKPOINTS`` pre-change checkpoints
the pre level is a **forecast of the segment's end level**: its mean plus its *climb*, the rise
per checkpoint from the segment's centre to its last checkpoint times that distance
(``t_end = (m - 1) / 2`` checkpoints):

    forecast = mean + t_end * (k * own climb + (1 - k) * pooled climb)

- the **own climb** is the least-squares slope of the pre-change checkpoint means (checkpoint
  order as the abscissa), with sampling variance ``s^2 = (sigma_c^2 + churn) / Sxx``; from
  ``CURVE_FROM`` checkpoints, where the segment's curvature (its orthogonal quadratic term)
  reads beyond ``CURVE_Z`` standard errors, the end climb of the fitted quadratic instead
  (as earlier runs' climbs are measured): on a long segment that flattens a line's slope is its
  average rise, and its end would overshoot the level the run had reached (20 checkpoints of a
  3-point saturating climb: +0.47 point). A straight climb keeps its line, whose end has half
  the quadratic's variance; below ``CURVE_FROM`` checkpoints the curvature is too uncertain to
  choose on, and the pooled climb carries the shape;
- the **pooled climb** comes from earlier runs of the same held-out set (the ones whose
  checkpoint variance is already pooled, ``variance.PastVariance``): each same-mining segment of
  ``MIN_TREND_CHECKPOINTS`` or more checkpoints gives its climb per checkpoint (``climb_moments``:
  a quadratic fit from 5 checkpoints on, so a curve that flattens gives its end, not its
  average, rise) and that climb's sampling variance. Their mean ``mu`` and their spread beyond
  sampling error ``tau^2`` make the prior of this run's climb: ``N(mu, P)`` with
  ``P = tau^2 + var(mu)`` (``ClimbPrior``). ``tau^2`` is the method of moments' (never
  negative) where Cochran's test says the climbs differ (``SPREAD_ALPHA``), else 0: on alike
  runs the plain estimate is positive in about half the histories by sampling alone, which
  doubled P on average and cost 2-3 points of detection at checkpoint SD 1 point; a run unlike
  alike predecessors is the guard's to catch (next);
- ``k = P / (P + s^2)`` is the posterior weight of the run's own slope (empirical Bayes): where
  earlier runs climbed alike (small ``P``) the forecast leans on their climb, which is far more
  precise than one segment's slope; where they differ, on the run's own;
- the **guard** against a run unlike its predecessors (a flat run among climbing ones): ``P``
  is at least this run's own deviation from the pooled climb beyond what sampling and the prior
  explain, ``max(P, (own - mu)^2 - (s^2 + P))`` (the method of moments of ``tau^2`` applied to
  this one run): earlier runs that climbed alike say nothing about how far *this* run may be
  from them, and its own climb does (a quadratic's end where it curves, like theirs: a long
  segment that flattens is not read as a steeper run). A run far from them weighs its own
  slope more (k up) and the prior's part of the variance grows with it. A pre-test (borrow
  nothing where the slopes differ by more than 2 standard errors) measured worse: a flat run
  whose slope lands near the pooled climb by chance borrows it all, and switching models costs
  the selection's pre-test.

The forecast is a fixed linear combination of the pre checkpoints plus a constant
(``ForecastTerms``: weights ``1/m + k g_j t_end``, with ``g`` the own climb's weights,
``(t_j - t̄) / Sxx`` for the line; offset ``t_end (1 - k) mu``),
so the test stays the paired two-level test; its variance adds ``t_end^2 (1 - k)^2 P`` (the
prior's uncertainty: how far this run's climb may be from the pooled one) with ``segments - 1``
degrees of freedom.

**A run that reads flat is decided by today's level test** (``FLAT_Z``): where the climb the
forecast would use, ``k own + (1 - k) mu``, is within one of its standard errors of 0 (its
posterior variance ``k^2 s^2 + (1 - k)^2 P``), the pre level is the segment's mean, with the
mean's variance and look levels: on a flat run among flat ones (most of them read flat) the
decision is today's, where the forecast's variance (the pooled climb's own uncertainty, the
guard's widening) cost 6-9 points of detection at checkpoint SD 1 point. On a flat run the
selection rests on the slope and the earlier runs, not on the segment's mean, so the mean's test
keeps its level where it is chosen (the runs that keep the forecast pay the pre-test: up to 0.3
point more false alarms on flat runs at SD 1 point); a climbing run that reads flat by chance is
compared with its mean, below its end (conservative), and one whose climb reads beyond a
standard error keeps its forecast (docs/alerting.md measures both).

With fewer than ``MIN_CLIMB_SEGMENTS`` earlier segments there is no prior, and the run's own
line decides between two models (``SELECT_Z``): the fitted end level (``k = 1``: the line's, or
the quadratic's where a long segment curves) where the line's slope is at least ``SELECT_Z``
standard errors from 0, else the mean (``k = 0``, whatever the curvature): a pre-test, whose
cost in false alarms the simulation measures (docs/alerting.md).

The forecast is held at that end level after the change (not extrapolated): the null hypothesis
is "the change cost nothing against where the run had got to", so a control that plateaus (the
usual reason for re-mining) stays silent, and one that keeps climbing stays silent too.
With fewer than ``MIN_TREND_CHECKPOINTS`` the pre level is the segment's mean: exactly the test
before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.stats import Interval
from recallwatch.stats.chi_square import chi_square_quantile
from recallwatch.stats.hierarchical import DETREND_MIN, CheckpointVariance
from recallwatch.stats.student_t import student_t_quantile

__all__ = [
    "CURVE_FROM",
    "CURVE_Z",
    "FLAT_Z",
    "MIN_CLIMB_SEGMENTS",
    "MIN_TREND_CHECKPOINTS",
    "SELECT_Z",
    "SPREAD_ALPHA",
    "ClimbPrior",
    "Forecast",
    "ForecastTerms",
    "climb_moments",
    "effective_pre",
    "forecast",
    "forecast_terms",
    "pool_climbs",
    "trend_weights",
]

FloatArray = npt.NDArray[np.float64]

#: Pre-change checkpoints from which the climb is forecast (fewer: the segment's mean).
#: (the same as ``stats.hierarchical.DETREND_MIN``: segments that long are measured around their
#: trend when their checkpoint variance is estimated).
MIN_TREND_CHECKPOINTS = DETREND_MIN
#: Earlier segments (of MIN_TREND_CHECKPOINTS or more) from which climbs are pooled into a prior.
MIN_CLIMB_SEGMENTS = 3
#: Without a prior: the run's own slope, in standard errors, from which the line's end is used.
SELECT_Z = 2.0
#: With a prior: the climb the forecast would use (``k own + (1 - k) mu``), in its own standard
#: errors, at or below which the pre level is the segment's mean: the run reads flat, and the
#: decision is today's level test (its estimate, its variance, its alpha).
FLAT_Z = 1.0
#: Earlier runs' climbs are taken to differ (tau > 0) where Cochran's test of their spread
#: rejects at this level; otherwise tau is 0 and a run unlike them is the guard's to catch.
SPREAD_ALPHA = 0.01
#: Pre-change checkpoints from which the run's own climb may be read as a quadratic's end.
CURVE_FROM = 10
#: The quadratic's curvature, in standard errors, beyond which it is (a curve that flattens).
CURVE_Z = 2.0


def _centred(m: int) -> FloatArray:
    return np.arange(m, dtype=np.float64) - (m - 1) / 2


def trend_weights(m: int, *, trend: bool = True) -> FloatArray:
    """Weights of the least-squares line's value at the last of ``m`` checkpoints (sum 1), or
    1/m each (``trend`` off or ``m < MIN_TREND_CHECKPOINTS``)."""
    if m < 1:
        raise ValueError("at least one pre checkpoint is needed")
    if not trend or m < MIN_TREND_CHECKPOINTS:
        return np.full(m, 1.0 / m)
    t = _centred(m)
    return np.asarray(1.0 / m + t * t[-1] / float((t**2).sum()))


def effective_pre(weights: FloatArray, extra: float = 0.0) -> float:
    """How many checkpoints the pre level is worth: ``1 / (sum(w^2) + extra)`` (m for the mean;
    ``extra``: the prior's variance in units of one checkpoint's)."""
    return round(1.0 / (float((np.asarray(weights) ** 2).sum()) + extra), 6)


def climb_moments(means: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(climb per checkpoint, its sampling variance) of segments: ``means`` (..., J) checkpoint
    means, J >= MIN_TREND_CHECKPOINTS.

    The climb is the fitted curve's end level minus the segment's mean, over ``t_end``: a
    straight line's slope for 4 checkpoints, a quadratic's from 5 on (unbiased for a curve that
    flattens, where a line over-forecasts the end). The variance is the fit's residual mean
    square times the squared weights.
    """
    y = np.asarray(means, dtype=np.float64)
    j = y.shape[-1]
    if j < MIN_TREND_CHECKPOINTS:
        raise ValueError(f"a climb needs at least {MIN_TREND_CHECKPOINTS} checkpoints")
    degree = 2 if j >= 5 else 1
    t = _centred(j)
    x = np.stack([t**p for p in range(degree + 1)], axis=1)
    hat = x @ np.linalg.pinv(x)
    end = hat[-1] - 1.0 / j
    fitted = y @ hat.T
    residual = ((y - fitted) ** 2).sum(axis=-1) / (j - degree - 1)
    climb = (y @ end) / t[-1]
    return np.asarray(climb), np.asarray(residual * float((end**2).sum()) / t[-1] ** 2)


def pool_climbs(
    climbs: FloatArray, variances: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(mean, tau^2, prior variance P) of earlier segments' climbs: (..., n) each, n >= 2.

    ``tau^2`` is the spread of the climbs beyond their sampling variance (method of moments,
    never negative) where Cochran's test says they differ (``SPREAD_ALPHA``; 0 where it does
    not); ``P = tau^2 + (tau^2 + mean sampling variance) / n`` adds the mean's own
    uncertainty: the variance of a new run's climb around ``mean``.
    """
    c, v = np.asarray(climbs, dtype=np.float64), np.asarray(variances, dtype=np.float64)
    n = c.shape[-1]
    if n < 2:
        raise ValueError("pooling needs at least two climbs")
    mean = c.mean(axis=-1)
    sampling = v.mean(axis=-1)
    spread = c.var(axis=-1, ddof=1)
    # Cochran's Q (the climbs' spread in units of their sampling variance) against its
    # chi-square quantile: alike runs' climbs differ by sampling alone.
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(sampling > 0, (n - 1) * spread / np.where(sampling > 0, sampling, 1), np.inf)
    differ = q > chi_square_quantile(1.0 - SPREAD_ALPHA, n - 1)
    tau2 = np.where(differ, np.maximum(0.0, spread - sampling), 0.0)
    return np.asarray(mean), np.asarray(tau2), np.asarray(tau2 + (tau2 + sampling) / n)


@dataclass(frozen=True)
class ClimbPrior:
    """The climb per checkpoint of earlier runs' segments: this run's prior (``pool_climbs``)."""

    mean: float
    tau: float
    #: The prior's variance (P): tau^2 plus the mean's sampling variance.
    variance: float
    segments: int

    @classmethod
    def of(cls, climbs: Iterable[tuple[float, float]]) -> ClimbPrior | None:
        """The prior of (climb, sampling variance) pairs; None below MIN_CLIMB_SEGMENTS."""
        pairs = [(c, v) for c, v in climbs if math.isfinite(c) and math.isfinite(v)]
        if len(pairs) < MIN_CLIMB_SEGMENTS:
            return None
        mean, tau2, p = pool_climbs(
            np.array([c for c, _ in pairs]), np.array([v for _, v in pairs])
        )
        return cls(float(mean), math.sqrt(float(tau2)), float(p), len(pairs))

    @property
    def df(self) -> float:
        """Degrees of freedom of the prior's variance (segments - 1)."""
        return float(self.segments - 1)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "climb_per_checkpoint": self.mean,
            "tau": self.tau,
            "variance": self.variance,
            "segments": self.segments,
        }


@dataclass(frozen=True)
class ForecastTerms:
    """The pre level as ``weights @ checkpoint means + offset``, and what it rests on (arrays
    over a batch of decisions in the simulation, 0-d in the daemon)."""

    #: (..., m) weights of the pre checkpoints (sum 1).
    weights: FloatArray
    #: (...) the prior's part of the forecast: t_end (1 - k) mu.
    offset: FloatArray
    #: (...) variance the prior adds: t_end^2 (1 - k)^2 P; its degrees of freedom.
    extra: FloatArray
    extra_df: float
    #: (...) the weight of the run's own slope (0: the mean or the pooled climb; 1: own line).
    k: FloatArray
    #: (...) the run's own climb per checkpoint: its line's slope, or its quadratic's end climb
    #: where the segment curves (``curved``).
    slope: FloatArray
    #: ``mean`` (fewer than MIN_TREND_CHECKPOINTS, or another comparison), ``pooled`` (a prior
    #: from earlier runs) or ``own`` (no prior: the run's own slope selected the model).
    model: str
    prior: ClimbPrior | None = None
    #: (...) one checkpoint mean's variance the terms were computed with.
    unit: FloatArray | float = 0.0
    #: (...) the run's own slope minus the pooled climb, in standard errors (sqrt(s^2 + P) of
    #: the earlier runs' prior; NaN without a prior), and whether the run's deviation widened
    #: the prior (the guard: the run looks unlike its predecessors).
    deviation: FloatArray | float = math.nan
    widened: npt.NDArray[np.bool_] | bool = False
    #: (...) whether the run read flat (``FLAT_Z``): the pre level is the segment's mean.
    flat: npt.NDArray[np.bool_] | bool = False
    #: (...) whether the run's own climb is a quadratic's end (``CURVE_Z``: its segment curves).
    curved: npt.NDArray[np.bool_] | bool = False

    def effective_pre(self) -> FloatArray:
        """(...) how many checkpoints the pre level is worth: ``1 / (sum(w^2) + extra / unit)``
        (m for the mean), for the looks' levels (``level.look_alpha``)."""
        w2 = (np.asarray(self.weights) ** 2).sum(axis=-1)
        unit = np.asarray(self.unit, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = np.where(unit > 0, np.asarray(self.extra) / np.where(unit > 0, unit, 1), 0.0)
        return np.asarray(1.0 / (w2 + extra))


def forecast_terms(
    means: FloatArray,
    unit_var: FloatArray | float,
    *,
    prior_mean: FloatArray | float | None = None,
    prior_var: FloatArray | float | None = None,
    prior_df: float = math.inf,
    trend: bool = True,
    prior: ClimbPrior | None = None,
    guard: bool = True,
    flat_z: float | None = FLAT_Z,
    curve_z: float | None = CURVE_Z,
) -> ForecastTerms:
    """The forecast's terms from the pre checkpoint means ``means`` (..., m).

    ``unit_var``: one checkpoint mean's variance (checkpoint variance plus its churn part).
    ``prior_mean`` / ``prior_var`` (or ``prior``): the pooled climb (``ClimbPrior``); without,
    the run's own slope selects the line or the mean (``SELECT_Z``). ``trend`` off or fewer
    than MIN_TREND_CHECKPOINTS: the mean. ``guard`` (off only to measure what it does): the
    prior's variance P is widened to the run's own excess deviation from the pooled climb,
    ``max(P, (slope - mu)^2 - (s^2 + P))``, so a run whose slope is far from its
    predecessors' weighs its own slope more and the forecast's variance says so. ``flat_z``
    (None only to measure without it): where the climb the forecast would use is within
    ``flat_z`` of its standard errors of 0, the pre level is the mean (``FLAT_Z``).
    ``curve_z`` (None only to measure without it): from CURVE_FROM checkpoints, a segment whose
    curvature reads beyond ``curve_z`` standard errors has a quadratic's end climb as its own.
    """
    y = np.asarray(means, dtype=np.float64)
    m = y.shape[-1]
    batch = y.shape[:-1]
    zero = np.zeros(batch)
    if not trend or m < MIN_TREND_CHECKPOINTS:
        weights = np.broadcast_to(np.full(m, 1.0 / m), (*batch, m))
        return ForecastTerms(weights, zero, zero, math.inf, zero, zero, "mean", None, unit_var)
    if prior is not None:
        prior_mean, prior_var, prior_df = prior.mean, prior.variance, prior.df
    t = _centred(m)
    sxx, t_end = float((t**2).sum()), float(t[-1])
    unit = np.broadcast_to(np.asarray(unit_var, dtype=np.float64), batch)
    # The run's own climb per checkpoint: ``y @ g`` (a line's slope; from CURVE_FROM
    # checkpoints a quadratic's end where its curvature reads beyond CURVE_Z standard errors).
    g = np.broadcast_to(t / sxx, (*batch, m))
    curved: npt.NDArray[np.bool_] = np.zeros(batch, dtype=bool)
    if curve_z is not None and m >= CURVE_FROM:
        q = t**2 - float((t**2).mean())
        qq = float((q**2).sum())
        curved = (y @ q / qq) ** 2 > curve_z**2 * unit / qq
        x = np.stack([t**d for d in range(3)], axis=1)
        g = np.where(curved[..., None], ((x @ np.linalg.pinv(x))[-1] - 1.0 / m) / t_end, g)
    slope = (y * g).sum(axis=-1)
    se2 = unit * (g**2).sum(axis=-1)
    deviation: FloatArray = np.full(batch, math.nan)
    widened: npt.NDArray[np.bool_] = np.zeros(batch, dtype=bool)
    flat: npt.NDArray[np.bool_] = np.zeros(batch, dtype=bool)
    if prior_var is not None and prior_mean is not None:
        p = np.broadcast_to(np.asarray(prior_var, dtype=np.float64), batch)
        mu = np.broadcast_to(np.asarray(prior_mean, dtype=np.float64), batch)
        own_climb, own_var = slope, se2
        with np.errstate(divide="ignore", invalid="ignore"):
            total = p + own_var
            deviation = np.where(
                total > 0, (own_climb - mu) / np.sqrt(np.where(total > 0, total, 1)), 0
            )
        if guard:
            own = (own_climb - mu) ** 2 - (own_var + p)
            widened = own > p
            p = np.maximum(p, own)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(p + se2 > 0, p / np.where(p + se2 > 0, p + se2, 1.0), 1.0)
        if flat_z is not None:
            # The run reads flat: the climb it would use is within flat_z of its own standard
            # errors of 0 (its posterior: k^2 s^2 + (1 - k)^2 P = P s^2 / (P + s^2)).
            climb = k * slope + (1.0 - k) * mu
            flat = climb**2 <= flat_z**2 * (k**2 * se2 + (1.0 - k) ** 2 * p)
            k, p, mu = np.where(flat, 0.0, k), np.where(flat, 0.0, p), np.where(flat, 0.0, mu)
            curved = curved & ~flat
        offset = t_end * (1.0 - k) * mu
        extra = t_end**2 * (1.0 - k) ** 2 * p
        model, df = "pooled", prior_df
    else:
        # The selection reads the line's slope: a run that reads flat keeps the mean whatever
        # its curvature (two pre-tests on a flat run would each cost it), one that climbs has
        # its end read off the curve where the segment curves.
        line = (y @ t) / sxx
        k = (line**2 > SELECT_Z**2 * unit / sxx).astype(np.float64)
        curved = curved & (k > 0)
        offset, extra, model, df = zero, zero, "own", math.inf
    weights = 1.0 / m + k[..., None] * g * t_end
    return ForecastTerms(
        np.asarray(weights),
        np.asarray(offset),
        np.asarray(extra),
        df,
        np.asarray(k),
        np.asarray(slope),
        model,
        prior,
        unit_var,
        deviation,
        widened,
        flat,
        curved,
    )


@dataclass(frozen=True)
class Forecast:
    """The pre level a decision compared with: the forecast of the climb's end, or the mean."""

    #: ``mean`` (the segment's mean), ``own`` (the run's own line, no prior) or ``pooled``
    #: (the run's slope shrunk toward the climb of earlier runs).
    model: str
    checkpoints: int
    #: The climb per checkpoint the forecast used (metric units; 0.0 for the mean).
    slope: float
    #: The pre level with its interval (checkpoint variance, churn and the prior's part).
    level: Interval
    #: The last pre-change checkpoint's own value (what the climb had reached, unsmoothed).
    last: float
    #: The run's own climb per checkpoint (a line's slope, or a quadratic's end climb where it
    #: curves), and its weight in ``slope``.
    own_slope: float = 0.0
    own_weight: float = 0.0
    prior: ClimbPrior | None = None
    #: The run's own slope minus the pooled climb in standard errors, and whether that
    #: deviation widened the prior (the run looked unlike its predecessors: the guard).
    deviation: float = math.nan
    widened: bool = False
    #: The run read flat against its prior (``FLAT_Z``): the pre level is the segment's mean.
    flat: bool = False
    #: The run's own climb is a quadratic's end: its segment curves (``CURVE_Z``).
    curved: bool = False

    @property
    def climbs(self) -> bool:
        """Whether the pre level is a forecast of the climb's end (not the plain mean)."""
        return (self.model == "pooled" and not self.flat) or (
            self.model == "own" and self.own_weight > 0
        )

    def describe(self, label: str) -> str:
        """``a forecast of 0.868 [0.859, 0.877] from the climb of the 5 checkpoints before``."""
        if not self.climbs:
            return (
                f"the mean {self.level.estimate:.3f} [{self.level.lower:.3f}, "
                f"{self.level.upper:.3f}] of the {self.checkpoints} checkpoint"
                f"{'s' if self.checkpoints != 1 else ''} before"
            )
        how = f"{self.slope * 100:+.2f} points of {label} per checkpoint"
        own = "end climb of a curve that flattens" if self.curved else "climb"
        if self.prior is not None:
            how += (
                f": this run's {own} {self.own_slope * 100:+.2f} weighted {self.own_weight:.2f} "
                f"against {self.prior.mean * 100:+.2f} from {self.prior.segments} segments of "
                "earlier runs"
            )
            if self.widened:
                how += f", {abs(self.deviation):.1f} standard errors apart: weighed as unlike them"
        return (
            f"a forecast of {self.level.estimate:.3f} [{self.level.lower:.3f}, "
            f"{self.level.upper:.3f}] from the climb of the {self.checkpoints} checkpoints "
            f"before the mining change ({how})"
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "model": self.model,
            "checkpoints": self.checkpoints,
            "slope_per_checkpoint": self.slope,
            "own_slope_per_checkpoint": self.own_slope,
            "own_weight": self.own_weight,
            "prior": self.prior.as_dict() if self.prior is not None else None,
            "deviation_se": self.deviation if math.isfinite(self.deviation) else None,
            "prior_widened": self.widened,
            "flat": self.flat,
            "curved": self.curved,
            "level": self.level.as_dict(),
            "last_pre_checkpoint": self.last,
        }


def forecast(
    pre: FloatArray,
    terms: ForecastTerms,
    variance: CheckpointVariance,
    *,
    confidence: float = 0.95,
) -> Forecast:
    """The pre level of ``pre`` (m, N) under ``terms`` (one decision), with its interval.

    Its variance is ``sum(w^2)`` times one checkpoint's (the checkpoint variance plus its churn,
    measured from the per-query differences of consecutive pre checkpoints: half their variance,
    over the queries) plus the prior's part; Student's t at Welch-Satterthwaite's degrees of
    freedom of the three.
    """
    a = np.atleast_2d(np.asarray(pre, dtype=np.float64))
    m, queries = a.shape
    w = np.asarray(terms.weights, dtype=np.float64).reshape(m)
    means = a.mean(axis=1)
    offset, extra = float(terms.offset), float(terms.extra)
    level = float(w @ means) + offset
    churn = (
        float(np.diff(a, axis=0).var(axis=1, ddof=1).mean()) / (2 * queries)
        if m >= 2 and queries >= 2
        else 0.0
    )
    factor = float((w**2).sum())
    v_checkpoints, v_churn = factor * variance.sd**2, factor * churn
    se = math.sqrt(v_checkpoints + v_churn + extra)
    # Welch-Satterthwaite, as the level test combines the parts.
    denominator = (
        v_checkpoints**2 / max(variance.df, 1e-9)
        + v_churn**2 / max(queries - 1, 1)
        + extra**2 / max(terms.extra_df, 1e-9)
    )
    total = v_checkpoints + v_churn + extra
    df = total**2 / denominator if denominator > 0 else variance.df
    half = float(student_t_quantile(0.5 + confidence / 2, max(df, 1.0))) * se
    k, own = float(terms.k), float(terms.slope)
    prior = terms.prior
    t_end = (m - 1) / 2
    # The climb used: k own + (1 - k) mu (the offset is t_end (1 - k) mu).
    slope = 0.0 if terms.model == "mean" else k * own + offset / t_end
    return Forecast(
        model=terms.model,
        checkpoints=m,
        slope=slope,
        level=Interval(level, max(0.0, level - half), min(1.0, level + half), confidence),
        last=float(means[-1]),
        own_slope=own if terms.model != "mean" else 0.0,
        own_weight=k,
        prior=prior,
        deviation=float(terms.deviation),
        widened=bool(terms.widened),
        flat=bool(terms.flat),
        curved=bool(terms.curved) and terms.model != "mean",
    )
