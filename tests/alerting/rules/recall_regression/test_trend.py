"""The pre-change trend (issue 25): a mining change mid-climb is judged against the climb's end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.recall_regression.level import (
    LevelPlan,
    decide_level,
    forecast_pre,
    level_regression_test,
    pre_forecast,
)
from recallwatch.alerting.rules.recall_regression.segments import CheckpointSummary
from recallwatch.alerting.rules.recall_regression.trend import (
    CURVE_FROM,
    FLAT_Z,
    MIN_CLIMB_SEGMENTS,
    MIN_TREND_CHECKPOINTS,
    SPREAD_ALPHA,
    ClimbPrior,
    climb_moments,
    effective_pre,
    forecast,
    forecast_terms,
    pool_climbs,
    trend_weights,
)
from recallwatch.stats.hierarchical import Moments, VarianceHistory, checkpoint_variance
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, B, Clock, Run, hits, make_config, outbox


def test_the_weights_are_the_mean_below_four_checkpoints_and_the_line_end_from_four() -> None:
    for m in range(1, MIN_TREND_CHECKPOINTS):
        assert np.array_equal(trend_weights(m), np.full(m, 1.0 / m))
    assert trend_weights(4) == pytest.approx([-0.2, 0.1, 0.4, 0.7])
    for m in (4, 5, 20):
        w = trend_weights(m)
        assert w.sum() == pytest.approx(1.0)
        # Exact on any straight line: the fitted end level is the line's last value.
        line = 0.8 + 0.005 * np.arange(m)
        assert float(w @ line) == pytest.approx(line[-1])
        assert effective_pre(w) == pytest.approx(m * (m + 1) / (4 * m - 2))
    assert np.array_equal(trend_weights(6, trend=False), np.full(6, 1 / 6))


def test_a_flat_segment_of_three_decides_exactly_as_the_mean_did() -> None:
    rng = np.random.default_rng(3)
    pre = (rng.random((3, 400)) < 0.8).astype(float)
    post = (rng.random((2, 400)) < 0.77).astype(float)
    variance = checkpoint_variance([pre], prior_sd=0.01, prior_df=4.0)
    terms = pre_forecast(pre, variance, None, trend=True)
    verdict = level_regression_test(pre, post, variance, terms=terms)
    today = level_regression_test(pre, post, variance)
    assert verdict.level == today.level and verdict.latest == today.latest
    assert verdict.before == today.before and verdict.regressed == today.regressed
    assert verdict.forecast is not None and verdict.forecast.model == "mean"
    assert forecast_pre(terms) == 3


def test_a_run_that_reads_flat_is_decided_by_todays_level_test() -> None:
    # Six checkpoints of the same level (each a reshuffle of the same hits: per-query churn, a
    # slope of exactly 0) among earlier runs that were flat: the climb the forecast would use
    # is within FLAT_Z standard errors of 0, so the pre level is the mean, with the mean's
    # variance and look levels: the verdict is today's.
    rng = np.random.default_rng(5)
    hits_row = (rng.random(2_000) < 0.8).astype(float)
    pre = np.stack([rng.permutation(hits_row) for _ in range(6)])
    post = (rng.random((2, 2_000)) < 0.78).astype(float)
    variance = checkpoint_variance([pre], prior_sd=0.01, prior_df=4.0)
    prior = ClimbPrior.of([(0.0004, 2e-5), (-0.0003, 2e-5), (0.0001, 2e-5), (-0.0002, 2e-5)])
    terms = pre_forecast(pre, variance, prior, trend=True)
    assert bool(terms.flat) and float(terms.offset) == 0.0 and float(terms.extra) == 0.0
    assert np.allclose(terms.weights, 1 / 6) and forecast_pre(terms) == 6
    verdict = level_regression_test(pre, post, variance, terms=terms)
    today = level_regression_test(pre, post, variance)
    assert verdict.level == today.level and verdict.latest == today.latest
    assert verdict.before == today.before and verdict.regressed == today.regressed
    assert verdict.forecast is not None and not verdict.forecast.climbs
    assert verdict.forecast.as_dict()["flat"] is True
    # Without reading it as flat (FLAT_Z off) the forecast's prior part widens the test.
    unit = variance.sd**2
    forecasted = forecast_terms(pre.mean(axis=1), unit, prior=prior, flat_z=None)
    assert not bool(forecasted.flat) and float(forecasted.extra) > 0.0
    assert float(forecasted.effective_pre()) < 6
    # A climb that reads beyond a standard error keeps its forecast.
    climbing = pre.mean(axis=1) + 0.004 * np.arange(6)
    kept = forecast_terms(climbing, unit, prior=ClimbPrior.of([(0.004, 2e-6)] * 4))
    assert not bool(kept.flat) and float(kept.offset) > 0.0
    assert FLAT_Z == 1.0


def test_a_climb_is_the_fitted_end_minus_the_mean_per_checkpoint() -> None:
    # A straight line (4 checkpoints: a line; 6: a quadratic, exact on a line too) and a curve
    # that flattens: the quadratic's climb is the true end's, where a line's would overshoot.
    for j in (4, 6):
        line = 0.80 + 0.004 * np.arange(j)
        climb, variance = climb_moments(line)
        assert float(climb) == pytest.approx(0.004) and float(variance) == pytest.approx(0.0)
    t = np.arange(6.0)
    curve = 0.80 + 0.01 * t - 0.001 * t**2
    climb, _ = climb_moments(curve)
    assert float(climb) * 2.5 == pytest.approx(curve[-1] - curve.mean())
    with pytest.raises(ValueError, match="at least 4"):
        climb_moments(line[:3])


def test_earlier_climbs_pool_into_a_prior_and_below_three_there_is_none() -> None:
    assert ClimbPrior.of([(0.005, 1e-6)] * 2) is None
    alike = ClimbPrior.of([(0.005, 1e-6)] * 5)
    assert alike is not None and alike.mean == pytest.approx(0.005) and alike.tau == 0.0
    assert alike.variance == pytest.approx(1e-6 / 5) and alike.df == 4.0
    spread = ClimbPrior.of([(0.0, 1e-6), (0.01, 1e-6), (0.02, 1e-6)])
    assert spread is not None and spread.tau == pytest.approx(math.sqrt(1e-4 - 1e-6))
    assert MIN_CLIMB_SEGMENTS == 3


@pytest.mark.parametrize("segments", [3, 10])
def test_alike_climbs_get_no_spread_but_at_the_tests_level_and_their_prior_covers(
    segments: int,
) -> None:
    # Earlier runs that climbed alike differ by sampling alone: Cochran's test finds a spread
    # (tau > 0) in about SPREAD_ALPHA of them, and a new alike run's climb falls within the
    # prior's 95% interval (P plus its own sampling variance) 95% of the time.
    rng = np.random.default_rng(segments)
    draws, v = 200_000, 1e-6
    climbs = 0.005 + rng.normal(0.0, math.sqrt(v), (draws, segments + 1))
    mean, tau2, p = pool_climbs(climbs[:, :segments], np.full((draws, segments), v))
    assert float((tau2 > 0).mean()) == pytest.approx(SPREAD_ALPHA, rel=0.25)
    z = (climbs[:, segments] - mean) / np.sqrt(p + v)
    assert float((np.abs(z) < 1.96).mean()) == pytest.approx(0.95, abs=0.005)


def test_climbs_that_differ_widen_the_prior_to_their_spread() -> None:
    # Runs whose climbs differ by twice their sampling SD: the test finds it nearly always, and
    # the prior's variance is on average the spread plus the mean's uncertainty.
    rng = np.random.default_rng(7)
    draws, segments, v, tau = 200_000, 10, 1e-6, 2e-3
    climbs = rng.normal(0.005, tau, (draws, segments))  # each run's own climb
    climbs += rng.normal(0.0, math.sqrt(v), climbs.shape)  # measured with sampling error
    _, tau2, p = pool_climbs(climbs, np.full(climbs.shape, v))
    assert float((tau2 > 0).mean()) > 0.85
    expected = tau**2 + (tau**2 + v) / segments
    assert float(p.mean()) == pytest.approx(expected, rel=0.1)


def test_the_forecast_leans_on_earlier_runs_climb_where_they_climbed_alike() -> None:
    m = 6
    t = np.arange(m) - 2.5
    means = 0.70 + 0.005 * t + np.array([0.004, -0.004, 0.0, 0.004, -0.004, 0.0])
    own = (means @ t) / float((t**2).sum())
    unit = 1e-4
    # A precise prior: the climb of earlier runs carries the forecast (k near 0).
    tight = forecast_terms(means, unit, prior_mean=0.005, prior_var=1e-9, prior_df=9)
    assert float(tight.k) < 0.01 and tight.model == "pooled"
    level = float(tight.weights @ means + tight.offset)
    assert level == pytest.approx(means.mean() + 2.5 * 0.005, abs=1e-4)
    # A vague prior: the run's own line.
    vague = forecast_terms(means, unit, prior_mean=0.0, prior_var=1.0, prior_df=9)
    assert float(vague.k) > 0.999
    assert float(vague.weights @ means + vague.offset) == pytest.approx(
        float(trend_weights(m) @ means), abs=1e-6
    )
    assert float(vague.slope) == pytest.approx(own)
    # No prior: the run's own slope, 0.45 point per checkpoint against its standard error of
    # 0.17, selects the line (0.24 at twice the variance: not 2 standard errors, the mean); a
    # flat run's the mean.
    assert float(forecast_terms(means, unit).k) == 0.0
    selected = forecast_terms(means, unit / 2)
    assert selected.model == "own" and float(selected.k) == 1.0
    flat = forecast_terms(np.full(m, 0.7) + means - means.mean() - 0.005 * t, unit)
    assert float(flat.k) == 0.0
    assert float(flat.effective_pre()) == pytest.approx(m)


def test_the_forecast_is_the_climbs_end_level_with_an_interval() -> None:
    rng = np.random.default_rng(4)
    levels = 0.80 + 0.01 * np.arange(5)
    pre = (rng.random((5, 2_000)) < levels[:, None]).astype(float)
    variance = checkpoint_variance([pre], prior_sd=0.005, prior_df=4.0)
    prior = ClimbPrior.of([(0.01, 1e-6)] * 4)
    f = forecast(pre, pre_forecast(pre, variance, prior, trend=True), variance)
    assert f.model == "pooled" and f.checkpoints == 5 and f.climbs
    assert f.slope == pytest.approx(0.01, abs=0.002)
    assert f.level.estimate == pytest.approx(0.84, abs=0.012)
    assert f.level.lower < f.level.estimate < f.level.upper
    text = f.describe("recall@10")
    assert text.startswith(f"a forecast of {f.level.estimate:.3f} [{f.level.lower:.3f}, ")
    assert "from the climb of the 5 checkpoints before the mining change" in text
    assert "from 4 segments of earlier runs" in text


def test_a_level_decision_uses_the_climb_of_earlier_runs(store: Store) -> None:
    # Six checkpoints climbing 1 point each, then a mining change back to the second one's level
    # (3 points below the last, 0.5 below the mean): with earlier runs that climbed alike the
    # forecast is the climb's end and the drop alerts; the mean alone would not.
    rng = np.random.default_rng(7)
    n = 1_000
    ease = rng.permutation((np.arange(n) + 0.5) / n)  # exact shares: means 0.65 ... 0.70
    values = {
        i: {f"q{q}": float(ease[q] < 0.70 + 0.01 * (i - 5)) for q in range(n)} for i in range(6)
    }
    values |= {6 + i: {f"q{q}": float(ease[q] < 0.67) for q in range(n)} for i in range(2)}
    pre = tuple(CheckpointSummary(i, f"c{i}", i, "a", 0.0) for i in range(6))
    post = tuple(CheckpointSummary(6 + i, f"c{6 + i}", 6 + i, "b", 0.0) for i in range(2))
    plan = LevelPlan(pre, post, (), sequential=True)
    climbs = tuple((0.01, 1e-6) for _ in range(5))
    history = VarianceHistory(Moments(0.0, 20, 0.0, 0.0, 5), 5, climbs)
    args = {"alpha": 0.01, "min_drop": 0.01, "resolve_alpha": 0.2, "prior_sd": 0.005}
    verdict = decide_level(plan, values, prior_df=4.0, history=history, **args)
    assert verdict is not None and verdict.forecast is not None
    assert verdict.forecast.model == "pooled" and verdict.regressed
    means = [float(np.mean(list(values[i].values()))) for i in range(6)]
    assert verdict.before.estimate == pytest.approx(means[-1], abs=0.002)
    # Earlier runs were flat, this run climbs 1 point per checkpoint exactly: unlike them (its
    # slope is about 10 standard errors from theirs), so the guard widens the prior to its
    # own deviation, its own slope carries the forecast and the drop alerts all the same.
    flat = VarianceHistory(Moments(0.0, 20, 0.0, 0.0, 5), 5, tuple((0.0, 1e-6) for _ in range(5)))
    unlike = decide_level(plan, values, prior_df=4.0, history=flat, **args)
    assert unlike is not None and unlike.forecast is not None and unlike.regressed
    assert unlike.forecast.widened and unlike.forecast.deviation > 5
    assert unlike.forecast.own_weight > 0.95
    assert unlike.before.estimate == pytest.approx(means[-1], abs=0.002)
    assert "weighed as unlike them" in unlike.forecast.describe("recall@10")
    assert unlike.as_dict()["forecast"]["prior_widened"] is True


def test_the_guard_weighs_a_run_unlike_its_predecessors_on_its_own_slope() -> None:
    # Earlier runs climbed 0.5 point per checkpoint alike (a tight prior); a flat run's own slope
    # (0 +- 0.24 per checkpoint) is 2 standard errors below it.
    m = 6
    t = np.arange(m) - 2.5
    unit = 1e-4
    flat = np.full(m, 0.70) + np.array([0.002, -0.002, 0.0, 0.002, -0.002, 0.0])
    args = {"prior_mean": 0.005, "prior_var": 1e-8, "prior_df": 9.0}
    off = forecast_terms(flat, unit, guard=False, flat_z=None, **args)
    on = forecast_terms(flat, unit, flat_z=None, **args)
    # Without the guard the pooled climb is borrowed whole: the forecast sits 1.2 points above
    # where the flat run is.
    assert float(off.k) < 0.01 and not bool(off.widened)
    assert float(off.weights @ flat + off.offset) == pytest.approx(0.70 + 0.0125, abs=5e-4)
    # With it: the prior's variance is the run's excess deviation (0.5^2 - s^2 - P), k > 0.7,
    # the forecast is under half as far up and its variance carries the prior's part.
    assert bool(on.widened) and float(on.deviation) < -2.0
    se2 = unit / float((t**2).sum())
    p = (float(on.slope) - 0.005) ** 2 - (se2 + 1e-8)
    assert float(on.k) == pytest.approx(p / (p + se2))
    assert float(on.weights @ flat + on.offset) < 0.70 + 0.005
    assert float(on.extra) == pytest.approx(2.5**2 * (1 - float(on.k)) ** 2 * p)
    # And with the flat reading (FLAT_Z) the climb the guarded forecast would use is within a
    # standard error of 0: the run reads flat, and its pre level is its mean.
    read = forecast_terms(flat, unit, **args)
    assert bool(read.widened) and bool(read.flat)
    assert float(read.offset) == 0.0 and float(read.extra) == 0.0
    assert np.allclose(read.weights, 1 / m)
    # A run like them is not widened: the same forecast as without the guard.
    like = flat + 0.005 * t
    same_on, same_off = (
        forecast_terms(like, unit, **args),
        forecast_terms(like, unit, guard=False, **args),
    )
    assert not bool(same_on.widened) and float(same_on.k) == float(same_off.k)


@pytest.mark.parametrize(("after", "alerts"), [(40, False), (30, False), (64, True)])
def test_a_mining_change_mid_climb_is_judged_against_where_the_run_had_got_to(
    store: Store, synthetic: SyntheticSet, after: int, alerts: bool
) -> None:
    # Five checkpoints climbing 10 queries (3.3 points) each, then a mining change: plateauing
    # (40 missed) or climbing on (30) is silent; 64 missed is 8 points below the climb's end
    # but only 1.3 below the segment's mean (today's rule would not alert).
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    for step, n_miss in ((100, 80), (200, 70), (300, 60), (400, 50), (500, 40)):
        alerting.after_checkpoint(run.add(step, A, hits(n_miss)))
    current = run.add(600, B, hits(after))
    alerting.after_checkpoint(current)
    (v,) = store.ledger.verdicts(current.id)
    # No earlier runs: the run's own slope (10 queries a checkpoint, exact) selects the line.
    assert v.details["forecast"]["model"] == "own"
    assert v.details["forecast"]["own_weight"] == 1.0
    assert v.details["forecast"]["level"]["estimate"] == pytest.approx(260 / 300)
    assert v.regressed is alerts
    assert bool(outbox(store)) is alerts
    if alerts:
        (record,) = store.ledger.open_alerts()
        description = record.alert.description
        assert description.startswith(f"recall@10 {236 / 300:.3f} at checkpoint-600 against a ")
        assert f"forecast of {260 / 300:.3f} [" in description
        assert "from the climb of the 5 checkpoints before the mining change" in description
        metric = record.alert.evidence.metric
        assert metric is not None and metric.checkpoint_variance is not None
        assert metric.checkpoint_variance["forecast"]["checkpoints"] == 5
        assert metric.before.estimate == pytest.approx(260 / 300)


def test_a_long_segment_that_curves_is_read_by_its_end_climb_and_a_straight_one_by_a_line() -> None:
    # 20 checkpoints on a curve that flattens (3 points, most of it early): its straight slope
    # is far steeper than its end climb, which is what earlier runs' quadratic fits give (the
    # prior). From CURVE_FROM checkpoints a segment whose curvature reads beyond CURVE_Z
    # standard errors is read as a quadratic's end, in the forecast and in the guard alike.
    m = 20
    assert m >= CURVE_FROM
    j = np.arange(m, dtype=np.float64)
    curve = 0.70 - 0.03 * (np.exp(-3 * j / (m - 1)) - math.exp(-3)) / (1 - math.exp(-3))
    (end_climb,), _ = climb_moments(curve[None, :])
    terms = forecast_terms(curve, 1e-5, prior_mean=float(end_climb), prior_var=1e-9, prior_df=9.0)
    assert bool(terms.curved)
    assert float(terms.slope) == pytest.approx(float(end_climb))
    assert not bool(terms.widened) and abs(float(terms.deviation)) < 1e-6
    level = float(terms.weights @ curve + terms.offset)
    assert level == pytest.approx(curve[-1], abs=0.002)
    # Without the curve: the line's slope over-reads the end, and the forecast overshoots it.
    line = forecast_terms(curve, 1e-5, prior_mean=float(end_climb), prior_var=1e-9, curve_z=None)
    assert not bool(line.curved) and float(line.slope) > 1.5 * float(end_climb)
    assert bool(line.widened)
    assert float(line.weights @ curve + line.offset) > curve[-1] + 0.003
    # A straight climb keeps its line (the quadratic's end would only add variance), and below
    # CURVE_FROM checkpoints the climb is always the line's slope.
    straight = 0.80 + 0.004 * j + np.random.default_rng(5).normal(0, 0.001, m)
    for y in (straight, curve[: CURVE_FROM - 1]):
        t = j[: y.size] - (y.size - 1) / 2
        plain = forecast_terms(y, 1e-6, prior_mean=0.004, prior_var=1e-6)
        assert not bool(plain.curved)
        assert float(plain.slope) == pytest.approx(float(y @ t / (t**2).sum()))
    # Without a prior the line's slope selects: a segment that curves but whose line is flat
    # (a dip and back) keeps the mean; one that climbs and curves has its end read off the curve.
    dip = 0.80 + 0.0004 * (j - 9.5) ** 2
    mean = forecast_terms(dip, 1e-6)
    assert mean.model == "own" and float(mean.k) == 0.0 and not bool(mean.curved)
    alone = forecast_terms(curve, 1e-5)
    assert float(alone.k) == 1.0 and bool(alone.curved)
    assert float(alone.weights @ curve) == pytest.approx(curve[-1], abs=0.002)


def test_a_forecast_from_a_curve_says_so() -> None:
    m = 20
    j = np.arange(m, dtype=np.float64)
    curve = 0.70 - 0.03 * (np.exp(-3 * j / (m - 1)) - math.exp(-3)) / (1 - math.exp(-3))
    rng = np.random.default_rng(9)
    pre = (rng.random((m, 2_000)) < curve[:, None]).astype(float)
    variance = checkpoint_variance([pre], prior_sd=0.001, prior_df=4.0)
    prior = ClimbPrior(mean=0.0005, tau=0.0, variance=1e-7, segments=10)
    f = forecast(pre, forecast_terms(pre.mean(axis=1), 1e-6, prior=prior), variance)
    assert f.curved and f.climbs and f.as_dict()["curved"] is True
    assert "this run's end climb of a curve that flattens " in f.describe("recall@10")
