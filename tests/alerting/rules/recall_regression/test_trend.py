"""The pre-change trend (issue 25): a mining change mid-climb is judged against the climb's end."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.recall_regression.level import level_regression_test
from recallwatch.alerting.rules.recall_regression.trend import (
    MIN_TREND_CHECKPOINTS,
    effective_pre,
    forecast,
    trend_weights,
)
from recallwatch.stats.hierarchical import checkpoint_variance
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
    verdict = level_regression_test(pre, post, variance, pre_weights=trend_weights(3))
    today = level_regression_test(pre, post, variance)
    assert verdict.level == today.level and verdict.latest == today.latest
    assert verdict.before == today.before and verdict.regressed == today.regressed
    assert verdict.forecast is not None and verdict.forecast.model == "mean"


def test_the_forecast_is_the_climbs_end_level_with_an_interval() -> None:
    rng = np.random.default_rng(4)
    levels = 0.80 + 0.01 * np.arange(5)
    pre = (rng.random((5, 2_000)) < levels[:, None]).astype(float)
    variance = checkpoint_variance([pre], prior_sd=0.005, prior_df=4.0)
    f = forecast(pre, trend_weights(5), variance)
    assert f.model == "trend" and f.checkpoints == 5
    assert f.slope == pytest.approx(0.01, abs=0.004)
    assert f.level.estimate == pytest.approx(0.84, abs=0.012)
    assert f.level.lower < f.level.estimate < f.level.upper
    text = f.describe("recall@10")
    assert text.startswith(f"a forecast of {f.level.estimate:.3f} [{f.level.lower:.3f}, ")
    assert "from the climb of the 5 checkpoints before the mining change" in text


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
    assert v.details["forecast"]["model"] == "trend"
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
