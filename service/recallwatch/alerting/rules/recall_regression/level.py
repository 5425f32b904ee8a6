"""The level decision: a mining change's post level against its pre level, checkpoint variance in.

The paired test (``paired``) compares two checkpoints and treats every difference
beyond query churn as real; but checkpoints trained under one mining configuration differ in
quality by themselves (half a point to a point of recall@10 from one save to the next). Here the
decision compares *levels*: the mean of the checkpoints before the change (the baseline's whole
segment) with the mean of the checkpoints after it so far, with both variance components in the
standard error (``stats.hierarchical``): query churn, measured from the per-query differences,
and checkpoint-to-checkpoint variation, estimated from the run's own same-mining segments before
the change, the segments of earlier runs of the same held-out set (``VarianceHistory``, read by
``variance.PastVariance``) and the rule's prior (``checkpoint_sd`` worth ``checkpoint_sd_weight``
degrees of freedom).

- ``level_plan`` says which checkpoints are compared and which measure the variance;
- ``decide_level`` turns their per-query values into a ``LevelVerdict``;
- ``level_decisions`` is the same decision vectorised (the simulation's);
- a mining change with enough pre-change checkpoints is tested against a forecast of their
  climb's end (``trend``: a climbing run is judged against where it had got to; the run's own
  slope shrunk toward the climb of earlier runs); with fewer, against their mean;
- a ``previous_mining`` comparison is looked at again at every post-change checkpoint, so each
  look is tested at ``look_alpha`` (``stats.sequential_levels``): alpha per mining change.

Pure: plain data in, plain data out; no store, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.alerting.rules.recall_regression.segments import (
    Baseline,
    CheckpointSummary,
    mining_segments,
)
from recallwatch.alerting.rules.recall_regression.trend import (
    ClimbPrior,
    Forecast,
    ForecastTerms,
    forecast,
    forecast_terms,
)
from recallwatch.stats import Interval, mean_interval
from recallwatch.stats.hierarchical import (
    CheckpointVariance,
    LevelTest,
    VarianceHistory,
    checkpoint_variance,
    level_test,
    level_test_arrays,
    segment_moments,
    sequential_alpha,
)
from recallwatch.stats.student_t import student_t_quantile

__all__ = [
    "LevelPlan",
    "LevelVerdict",
    "aligned_values",
    "decide_level",
    "level_decisions",
    "level_plan",
    "level_regression_test",
    "look_alpha",
]

FloatArray = npt.NDArray[np.float64]


def look_alpha(alpha: float, pre: float, *, sequential: bool, look: int = 1) -> tuple[float, float]:
    """The (cumulative, latest) levels of one look.

    A ``previous_mining`` comparison is looked at again at every post-change checkpoint (the post
    level is cumulative, and the latest checkpoint alone counts at the first looks), so each look
    is tested at ``stats.sequential_alpha``: the chance of any false alarm per mining change stays
    ``alpha`` (``pre``: how many checkpoints the pre level is worth, ``forecast_pre``).
    Other comparisons (one checkpoint against a pinned one, or its own segment's
    earlier ones) are tested at ``alpha`` per checkpoint, where both tests are the same.
    """
    return sequential_alpha(alpha, max(1, pre), look) if sequential else (alpha, alpha)


@dataclass(frozen=True)
class LevelVerdict:
    """Whether the post-change level regressed against the pre-change level, and the numbers.

    ``level`` compares the mean of the post checkpoints so far with the mean of the pre ones,
    with checkpoint-to-checkpoint variance and query churn both in its standard error; ``latest``
    compares the latest checkpoint alone with the pre level (the hysteresis check: a checkpoint
    that is clearly fine opens nothing and resolves an open alert).
    """

    before: Interval
    after: Interval
    #: after - before, with its interval from both variance components (Student's t).
    difference: Interval
    level: LevelTest
    latest: LevelTest
    #: The latest checkpoint alone: its value and its difference from the pre level (what an
    #: alert shows as "after": the checkpoint it is about).
    latest_after: Interval
    latest_difference: Interval
    alpha: float
    min_drop: float
    resolve_alpha: float
    significant: bool
    large_enough: bool
    #: The same two conditions for the latest checkpoint alone against the pre level.
    latest_significant: bool = False
    latest_large_enough: bool = False
    #: What the pre level is (``trend``): the forecast of the climb's end or the segment's mean.
    forecast: Forecast | None = None

    @property
    def p_value(self) -> float:
        """The p-value that decided: the smaller of the cumulative and the latest test's."""
        return min(self.level.p_value, self.latest.p_value)

    @property
    def latest_holds(self) -> bool:
        """The latest checkpoint is not clearly back: drop >= min_drop / 2, p <= resolve_alpha."""
        return self.still_regressed(self.resolve_alpha)

    @property
    def regressed(self) -> bool:
        """A drop of at least ``min_drop`` significant at ``alpha`` (of the cumulative level or
        of the latest checkpoint), and the latest checkpoint not clearly back."""
        cumulative = self.significant and self.large_enough
        latest = self.latest_significant and self.latest_large_enough
        return (cumulative or latest) and self.latest_holds

    def still_regressed(self, resolve_alpha: float) -> bool:
        """An open alert stays open: the latest checkpoint's drop >= min_drop / 2 and its
        p <= ``resolve_alpha``."""
        return (
            -self.latest.difference >= self.min_drop / 2 - 1e-12
            and self.latest.p_value <= resolve_alpha
        )

    @property
    def drop(self) -> float:
        """before - after (positive when the level fell)."""
        return self.before.estimate - self.after.estimate

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "test": "level",
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "difference": self.difference.as_dict(),
            "p_value": self.level.p_value,
            "queries": self.level.queries,
            "level": self.level.as_dict(),
            "latest": self.latest.as_dict(),
            "latest_after": self.latest_after.as_dict(),
            "latest_difference": self.latest_difference.as_dict(),
            "alpha": self.alpha,
            "min_drop": self.min_drop,
            "resolve_alpha": self.resolve_alpha,
            "significant": self.significant,
            "large_enough": self.large_enough,
            "latest_significant": self.latest_significant,
            "latest_large_enough": self.latest_large_enough,
            "latest_holds": self.latest_holds,
            "regressed": self.regressed,
            "forecast": self.forecast.as_dict() if self.forecast is not None else None,
        }


def level_regression_test(
    pre: FloatArray,
    post: FloatArray,
    variance: CheckpointVariance,
    *,
    min_drop: float = 0.01,
    alpha: float = 0.01,
    latest_alpha: float | None = None,
    resolve_alpha: float = 0.2,
    confidence: float = 0.95,
    terms: ForecastTerms | None = None,
) -> LevelVerdict:
    """Decide whether the post level regressed against the pre level.

    ``pre`` (m, N) and ``post`` (n, N) are per-query values over the same queries, checkpoints
    in step order (the last row of ``post`` is the checkpoint under decision). ``alpha`` and
    ``latest_alpha`` (default: ``alpha``) are the levels of this look (``look_alpha``).
    ``terms``: the pre level as a forecast of the pre checkpoints' climb (``trend``); default
    their mean.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be between 0 and 1")
    if min_drop < 0.0:
        raise ValueError("min_drop must be non-negative")
    a_pre, a_post = np.atleast_2d(pre), np.atleast_2d(post)
    if terms is None:
        terms = forecast_terms(a_pre.mean(axis=1), 0.0, trend=False)
    extra = (terms.weights, float(terms.offset), float(terms.extra), terms.extra_df)
    level = level_test(a_pre, a_post, variance, *extra)
    latest = level_test(a_pre, a_post[-1:], variance, *extra)
    pre_level = forecast(a_pre, terms, variance, confidence=confidence)
    before = (
        pre_level.level
        if pre_level.climbs
        else mean_interval(a_pre.mean(axis=0), confidence=confidence)
    )
    after = mean_interval(a_post.mean(axis=0), confidence=confidence)
    difference = _difference(level, confidence)
    return LevelVerdict(
        before=before,
        after=after,
        difference=difference,
        level=level,
        latest=latest,
        latest_after=mean_interval(a_post[-1], confidence=confidence),
        latest_difference=_difference(latest, confidence),
        alpha=alpha,
        min_drop=min_drop,
        resolve_alpha=resolve_alpha,
        significant=level.p_value <= alpha,
        large_enough=-level.difference >= min_drop - 1e-12,
        latest_significant=latest.p_value <= (alpha if latest_alpha is None else latest_alpha),
        latest_large_enough=-latest.difference >= min_drop - 1e-12,
        forecast=pre_level,
    )


def _difference(test: LevelTest, confidence: float) -> Interval:
    """post - pre with its Student's t interval (both variance components)."""
    half = float(student_t_quantile(0.5 + confidence / 2, test.df)) * test.se
    return Interval(
        test.difference,
        max(-1.0, test.difference - half),
        min(1.0, test.difference + half),
        confidence,
    )


def level_decisions(
    pre: FloatArray,
    post: FloatArray,
    checkpoint_var: FloatArray | float,
    df: FloatArray | float,
    *,
    min_drop: float,
    alpha: FloatArray | float,
    latest_alpha: FloatArray | float,
    resolve_alpha: float,
    terms: ForecastTerms | None = None,
) -> npt.NDArray[np.bool_]:
    """``level_regression_test(...).regressed`` for a batch: pre (..., m, N), post (..., n, N).

    ``alpha`` and ``latest_alpha`` may be arrays over the batch (``look_alphas``)."""
    extra = (
        (None, 0.0, 0.0, math.inf)
        if terms is None
        else (terms.weights, terms.offset, terms.extra, terms.extra_df)
    )
    level = level_test_arrays(pre, post, checkpoint_var, df, *extra)
    latest = level_test_arrays(pre, np.asarray(post)[..., -1:, :], checkpoint_var, df, *extra)
    latest_drop = -latest["difference"]
    return np.asarray(
        (
            ((level["p"] <= alpha) & (-level["difference"] >= min_drop - 1e-12))
            | ((latest["p"] <= latest_alpha) & (latest_drop >= min_drop - 1e-12))
        )
        & (latest_drop >= min_drop / 2 - 1e-12)
        & (latest["p"] <= resolve_alpha)
    )


@dataclass(frozen=True)
class LevelPlan:
    """Which checkpoints a level decision compares, and which ones measure checkpoint variance."""

    #: The pre level's checkpoints (the baseline's segment, the earlier checkpoints of the
    #: current segment, or the pinned checkpoint), in step order.
    pre: tuple[CheckpointSummary, ...]
    #: The post level's checkpoints, in step order, ending with the one under decision.
    post: tuple[CheckpointSummary, ...]
    #: Groups of same-mining checkpoints before the post ones (variance estimation).
    groups: tuple[tuple[CheckpointSummary, ...], ...]
    #: Whether the post level accumulates over a mining change's checkpoints (alpha is spread).
    sequential: bool

    @property
    def look(self) -> int:
        """Which post-change look this is (1 for the first checkpoint after the change)."""
        return len(self.post)

    @property
    def checkpoints(self) -> list[CheckpointSummary]:
        """Every checkpoint whose per-query values the decision needs (each once)."""
        seen: dict[int, CheckpointSummary] = {}
        for c in (*self.pre, *self.post, *(c for g in self.groups for c in g)):
            seen.setdefault(c.id, c)
        return list(seen.values())


def _scored(cs: Iterable[CheckpointSummary]) -> tuple[CheckpointSummary, ...]:
    return tuple(c for c in cs if c.value is not None and math.isfinite(c.value))


def level_plan(
    history: Sequence[CheckpointSummary], current: CheckpointSummary, baseline: Baseline
) -> LevelPlan:
    """The level comparison behind ``baseline`` (from ``choose_baseline``) for ``current``.

    ``previous_mining``: the baseline's whole segment against the current segment's checkpoints
    up to ``current`` (sequential). ``same_mining``: the earlier checkpoints of the segment
    against ``current``. Pinned: the pinned checkpoint against ``current``. Checkpoint variance
    comes from every same-mining segment before ``current``'s (and, for ``same_mining``, the
    segment's earlier checkpoints): never from the checkpoints under test after the change. Their
    spread would be a valid estimate under a sustained shift, but it couples the decision to how
    the change hit them: a drop that hits them unevenly, or a partial recovery, widens it, and
    the latest checkpoint's test (the hysteresis) would then resolve an alert on a checkpoint
    still well below the pre level; the simulation measured at most 1 point of detection for
    it (docs/alerting.md).
    """
    ids = [c.id for c in history]
    before = list(history[: ids.index(current.id)]) if current.id in ids else list(history)
    segments = mining_segments([*before, current])
    mine = next((s for s in reversed(segments) if s[-1].id == current.id), [current])
    earlier = [_scored(s) for s in segments if s is not mine]
    groups = [g for g in earlier if len(g) >= 2]
    if baseline.kind == "previous_mining":
        pre = next(
            (_scored(s) for s in segments if any(c.id == baseline.checkpoint.id for c in s)),
            (baseline.checkpoint,),
        )
        return LevelPlan(pre, _scored(mine), tuple(groups), sequential=True)
    if baseline.kind == "same_mining":
        pre = _scored(mine[:-1])
        return LevelPlan(pre, (current,), (*groups, pre) if len(pre) >= 2 else tuple(groups), False)
    return LevelPlan((baseline.checkpoint,), (current,), tuple(groups), sequential=False)


def aligned_values(maps: Sequence[Mapping[str, float]]) -> FloatArray:
    """Per-query values of several checkpoints as a (checkpoints, queries) matrix over the query
    ids all of them have (in the first one's order)."""
    if not maps:
        return np.zeros((0, 0))
    ids = [q for q in maps[0] if all(q in m for m in maps[1:])]
    return np.array([[m[q] for q in ids] for m in maps], dtype=np.float64).reshape(len(maps), -1)


def decide_level(
    plan: LevelPlan,
    values: Mapping[int, Mapping[str, float]],
    *,
    alpha: float,
    min_drop: float,
    resolve_alpha: float,
    prior_sd: float,
    prior_df: float,
    history: VarianceHistory | None = None,
) -> LevelVerdict | None:
    """The level verdict of ``plan`` from per-query values by checkpoint id (None: no queries).

    ``alpha`` is the rule's; the look's levels come from ``look_alpha``. ``history``: the
    checkpoint-variance moments of earlier runs of the same held-out set (plain data).
    """
    pre_post = aligned_values([values[c.id] for c in (*plan.pre, *plan.post)])
    if pre_post.shape[1] < 2:
        return None
    groups = [aligned_values([values[c.id] for c in g]) for g in plan.groups]
    variance = checkpoint_variance(
        [g for g in groups if g.shape[1] >= 2],
        prior_sd=prior_sd,
        prior_df=prior_df,
        history=history,
    )
    m = len(plan.pre)
    prior = ClimbPrior.of(history.climbs) if history is not None else None
    terms = pre_forecast(pre_post[:m], variance, prior, trend=plan.sequential)
    cumulative, latest = look_alpha(
        alpha, forecast_pre(terms), sequential=plan.sequential, look=plan.look
    )
    return level_regression_test(
        pre_post[:m],
        pre_post[m:],
        variance,
        min_drop=min_drop,
        alpha=cumulative,
        latest_alpha=latest,
        resolve_alpha=resolve_alpha,
        terms=terms,
    )


def pre_forecast(
    pre: FloatArray, variance: CheckpointVariance, prior: ClimbPrior | None, *, trend: bool
) -> ForecastTerms:
    """The forecast's terms of one decision's pre checkpoints (m, N) (``trend.forecast_terms``):
    one checkpoint mean's variance is the checkpoint variance plus the segment's churn part."""
    unit = variance.sd**2 + (float(segment_moments(pre)[2]) if len(pre) >= 2 else 0.0)
    return forecast_terms(pre.mean(axis=1), unit, prior=prior, trend=trend)


def forecast_pre(terms: ForecastTerms) -> int:
    """How many checkpoints the pre level is worth for the looks' levels (``look_alpha``):
    ``ForecastTerms.effective_pre`` rounded up (a few distinct levels, each computed once)."""
    return max(1, math.ceil(float(terms.effective_pre()) - 1e-9))
