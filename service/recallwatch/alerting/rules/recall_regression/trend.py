"""The pre-change trend: the level a climbing run had reached when its mining changed.

The level test (``level``) compares the post-change checkpoints with a *pre level*. Today's pre
level is the mean of the pre-change segment; on a run that is still climbing that mean sits below
where the model had got to, and a mining change made mid-climb can cost several points against the
last pre-change checkpoint without an alert (issue 25). For a mining change with at least
``MIN_TREND_CHECKPOINTS`` pre-change checkpoints the rule (``level.decide_level``) therefore
tests two pre levels, each at alpha / 2 (Bonferroni: alpha per change whichever is true): the
mean, and the *end level* of a straight line fitted to the checkpoint means by least squares
(checkpoint order as the abscissa): the fitted value at the last pre-change checkpoint. That is a
fixed linear combination of the pre checkpoints (``trend_weights``), so the test stays the same
paired two-level test, with the checkpoint variance multiplied by ``sum(w^2)`` instead of ``1/m``
(the forecast's uncertainty) and the query churn measured from the per-query differences as
before. Unbiased for any linear climb (flat included): no pre-test chooses the model.

The forecast is held at that end level after the change (not extrapolated): the null hypothesis is
"the change cost nothing against where the run had got to", so a control that plateaus (the usual
reason for re-mining) stays silent, and one that keeps climbing stays silent too. With fewer than
``MIN_TREND_CHECKPOINTS`` the pre level is the segment's mean at alpha: exactly the test before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.stats import Interval
from recallwatch.stats.hierarchical import DETREND_MIN, CheckpointVariance
from recallwatch.stats.student_t import student_t_quantile

__all__ = ["MIN_TREND_CHECKPOINTS", "Forecast", "effective_pre", "forecast", "trend_weights"]

FloatArray = npt.NDArray[np.float64]

#: Pre-change checkpoints from which the trend is fitted (fewer: the segment's mean).
#: (the same as ``stats.hierarchical.DETREND_MIN``: segments that long are measured around their
#: trend when their checkpoint variance is estimated).
MIN_TREND_CHECKPOINTS = DETREND_MIN


def trend_weights(m: int, *, trend: bool = True) -> FloatArray:
    """Weights of the pre level over ``m`` pre checkpoints (sum 1): the least-squares line's
    value at the last one, or 1/m each (``trend`` off or ``m < MIN_TREND_CHECKPOINTS``)."""
    if m < 1:
        raise ValueError("at least one pre checkpoint is needed")
    if not trend or m < MIN_TREND_CHECKPOINTS:
        return np.full(m, 1.0 / m)
    t = np.arange(m, dtype=np.float64)
    centred = t - t.mean()
    return np.asarray(1.0 / m + centred * centred[-1] / float((centred**2).sum()))


def effective_pre(weights: FloatArray) -> float:
    """How many checkpoints the pre level is worth: ``1 / sum(w^2)`` (m for the mean)."""
    return round(1.0 / float((np.asarray(weights) ** 2).sum()), 6)


@dataclass(frozen=True)
class Forecast:
    """The pre level a decision compared with: the trend's end level, or the segment's mean."""

    #: ``trend`` (the fitted line's end level) or ``mean`` (the segment's mean).
    model: str
    checkpoints: int
    #: The fitted slope in metric units per checkpoint (0.0 for the mean).
    slope: float
    #: The pre level with its interval (checkpoint variance and churn of the pre checkpoints).
    level: Interval
    #: The last pre-change checkpoint's own value (what the climb had reached, unsmoothed).
    last: float

    def describe(self, label: str) -> str:
        """``a forecast of 0.868 [0.859, 0.877] from the climb of the 5 checkpoints before``."""
        what = (
            f"a forecast of {self.level.estimate:.3f} [{self.level.lower:.3f}, "
            f"{self.level.upper:.3f}] from the climb of the {self.checkpoints} checkpoints "
            f"before the mining change ({self.slope * 100:+.2f} points of {label} per checkpoint)"
            if self.model == "trend"
            else f"the mean {self.level.estimate:.3f} [{self.level.lower:.3f}, "
            f"{self.level.upper:.3f}] of the {self.checkpoints} checkpoint"
            f"{'s' if self.checkpoints != 1 else ''} before"
        )
        return what

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "model": self.model,
            "checkpoints": self.checkpoints,
            "slope_per_checkpoint": self.slope,
            "level": self.level.as_dict(),
            "last_pre_checkpoint": self.last,
        }


def forecast(
    pre: FloatArray,
    weights: FloatArray,
    variance: CheckpointVariance,
    *,
    confidence: float = 0.95,
) -> Forecast:
    """The pre level of ``pre`` (m, N) under ``weights``, with its interval.

    Its variance is ``sum(w^2)`` times one checkpoint's (the checkpoint variance plus its churn,
    measured from the per-query differences of consecutive pre checkpoints: half their variance,
    over the queries); Student's t at Welch-Satterthwaite's degrees of freedom of the two.
    """
    a = np.atleast_2d(np.asarray(pre, dtype=np.float64))
    m, queries = a.shape
    w = np.asarray(weights, dtype=np.float64)
    means = a.mean(axis=1)
    level = float(w @ means)
    t = np.arange(m, dtype=np.float64)
    slope = (
        float(((t - t.mean()) * (means - means.mean())).sum() / ((t - t.mean()) ** 2).sum())
        if m >= 2 and not np.allclose(w, 1.0 / m)
        else 0.0
    )
    churn = (
        float(np.diff(a, axis=0).var(axis=1, ddof=1).mean()) / (2 * queries)
        if m >= 2 and queries >= 2
        else 0.0
    )
    factor = float((w**2).sum())
    v_checkpoints, v_churn = factor * variance.sd**2, factor * churn
    se = math.sqrt(v_checkpoints + v_churn)
    # Welch-Satterthwaite, as the level test combines the two parts.
    denominator = v_checkpoints**2 / max(variance.df, 1e-9) + v_churn**2 / max(queries - 1, 1)
    df = (v_checkpoints + v_churn) ** 2 / denominator if denominator > 0 else variance.df
    half = float(student_t_quantile(0.5 + confidence / 2, max(df, 1.0))) * se
    return Forecast(
        model="mean" if np.allclose(w, 1.0 / m) else "trend",
        checkpoints=m,
        slope=slope,
        level=Interval(level, max(0.0, level - half), min(1.0, level + half), confidence),
        last=float(means[-1]),
    )
