"""The recall_regression rule over a real store: baselines, confirmation, hysteresis, evidence."""

from __future__ import annotations

import json

import pytest

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.recall_regression.level import look_alpha
from recallwatch.alerting.rules.recall_regression.rule import confirmed, verdict_kind
from recallwatch.config import RecallRegressionRule
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import REC, A, B, Clock, Run, hits, make_config, outbox, reparse


def test_regression_fires_once_dedups_and_resolves(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    fn_b = FnEstimate("qrels", 200, 24, 0.12, 0.08, 0.17, details={"recommendation": REC})
    for step, mining, h in ((100, A, hits(60)), (200, A, hits(50))):
        alerting.after_checkpoint(run.add(step, mining, h))
    assert outbox(store) == []  # no mining change yet
    alerting.after_checkpoint(run.add(300, B, hits(52, shift=3)))  # noise-level change
    assert outbox(store) == []
    # 40 more queries lost than the best (200), 35 more than the pre level; the two checkpoints
    # before the change differ by 10 queries (3.3 points), which the test takes as their spread.
    bad = run.add(400, B, hits(90), fn=fn_b)
    alerting.after_checkpoint(bad)
    alerting.after_checkpoint(bad)  # a re-run of the same decision writes nothing twice
    ((event, channel, _),) = outbox(store)
    assert (event, channel) == ("firing", "am")
    (record,) = store.ledger.open_alerts()
    alert = record.alert
    assert alert.key.baseline == "checkpoint-200" and alert.checkpoint == "checkpoint-400"
    ev = alert.evidence
    assert ev.regression_kind == "mining_change" and ev.metric is not None
    # The pre level (the mean of 100 and 200) before, this checkpoint after; the post level
    # (the mean of 300 and 400) is in the variance part.
    assert ev.metric.before.estimate == pytest.approx(245 / 300)
    assert ev.metric.after.estimate == pytest.approx(210 / 300)
    assert ev.metric.alpha == pytest.approx(look_alpha(0.01, 2, sequential=True, look=2)[0])
    variance = ev.metric.checkpoint_variance
    assert variance is not None and variance["data_df"] == 1 and variance["prior_sd"] == 0.01
    assert (variance["pre_checkpoints"], variance["post_checkpoints"]) == (2, 2)
    assert variance["post_level"] == pytest.approx(229 / 300)
    assert variance["assumed"] in alert.description
    assert [(c.key, c.before, c.after) for c in ev.mining_diff] == [
        ("mined_set", "a.jsonl", "b.jsonl"),
        ("range_min", 10, 0),
    ]
    assert ev.lost_count == 40 and len(ev.lost_top) == 5
    assert ev.lost_top[0].query_text.startswith("question ")
    assert ev.lost_top[0].doc_title.startswith("Document ")
    assert ev.fn_after is not None and ev.fn_after.oracle == "qrels"
    assert ev.recommendation == ("set range_min=10: projected FN rate 3.8%, drops 21% of negatives")
    assert alert.links["alert"] == f"http://rw.example/alerts/{alert.id}"
    (v,) = [v for v in store.ledger.verdicts(bad.id) if v.kind == "previous_mining"]
    assert v.regressed and v.p_value is not None and v.p_value <= 0.01
    alerting.after_checkpoint(run.add(500, B, hits(91)))  # still regressed: nothing new
    assert len(outbox(store)) == 1
    alerting.after_checkpoint(run.add(600, B, hits(50)))  # recovered
    events = [e for e, _, _ in outbox(store)]
    assert events == ["firing", "resolved"]
    assert store.ledger.open_alerts() == []
    resolved = store.ledger.alert(alert.id)
    assert resolved is not None and resolved.status == "resolved"
    assert resolved.alert.checkpoint == "checkpoint-600"


def test_confirmation_needs_consecutive_regressions(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path, [{"name": "reg", "type": "recall_regression", "confirm": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(90)))
    assert outbox(store) == []  # one regressed checkpoint is not enough
    alerting.after_checkpoint(run.add(300, B, hits(50)))
    alerting.after_checkpoint(run.add(400, B, hits(100)))
    assert outbox(store) == []  # not consecutive
    alerting.after_checkpoint(run.add(500, B, hits(100)))
    assert [e for e, _, _ in outbox(store)] == ["firing"]


def test_same_mining_regression_says_it_is_not_mining(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path,
        [{"name": "same", "type": "recall_regression", "compare_with": "same_mining"}],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, A, hits(80)))
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallRegression"
    assert record.alert.evidence.regression_kind == "same_mining"
    assert "not caused by mining" in record.alert.summary


def test_a_new_mining_change_keeps_the_old_alert_while_still_regressed(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    first = store.ledger.open_alerts()[0].alert
    # A new mining change: the baseline moves to the best of B, but nothing recovered against
    # checkpoint-100, so the old alert stays open and no RESOLVED is sent.
    alerting.after_checkpoint(run.add(300, {"range_min": 5}, hits(80)))
    assert [r.alert.id for r in store.ledger.open_alerts()] == [first.id]
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    alerting.after_checkpoint(run.add(400, {"range_min": 5}, hits(50)))  # recovered
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]
    old = store.ledger.alert(first.id)
    assert old is not None and old.status == "resolved"
    assert "superseded: the baseline is now checkpoint-200" in old.alert.description
    # What resolved it: checkpoint-400 against the alert's own baseline, checkpoint-100.
    assert "checkpoint-400 is no longer regressed against checkpoint-100" in old.alert.summary
    resolution = old.alert.resolution
    assert resolution is not None and resolution.checkpoint == "checkpoint-400"
    assert resolution.metric is not None
    assert resolution.metric.before.estimate == resolution.metric.after.estimate


def test_an_open_alert_resolves_only_when_clearly_recovered(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    # 5 more queries lost than the baseline: alone, p = 0.17 > alpha, but not a recovery either
    # (drop 1.7 points >= min_drop / 2, p <= resolve_alpha): it stays open.
    near = run.add(300, B, hits(55))
    alerting.after_checkpoint(near)
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    (v,) = store.ledger.verdicts(near.id)
    assert 0.01 < v.details["latest"]["p_value"] <= 0.2 and v.details["latest_holds"]
    alerting.after_checkpoint(run.add(400, B, hits(80)))  # regressed again: the same episode
    alerting.after_checkpoint(run.add(500, B, hits(51)))  # drop 0.3 points: recovered
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]
    assert store.ledger.open_alerts() == []


def test_a_best_baseline_is_not_what_is_tested(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    for step, n_miss in ((100, 60), (200, 50), (300, 55), (400, 58)):
        alerting.after_checkpoint(run.add(step, A, hits(n_miss)))
    bad = run.add(500, B, hits(58))  # 8 queries worse than the best of 4 (p = 1/256 against it)
    alerting.after_checkpoint(bad)
    (v,) = store.ledger.verdicts(bad.id)
    details = v.details
    assert details["baseline"] == "checkpoint-200" and details["candidates"] == 4
    # The level of all four is what is tested: with no earlier runs, their own slope (-0.1
    # query a checkpoint, far from 2 standard errors) keeps the mean (2.25 queries worse).
    assert details["pre"] == [f"checkpoint-{s}" for s in (100, 200, 300, 400)]
    assert details["forecast"]["model"] == "own" and details["forecast"]["own_weight"] == 0.0
    assert details["before"]["estimate"] == pytest.approx(244.25 / 300)
    assert details["forecast"]["checkpoints"] == 4
    assert details["alpha"] == pytest.approx(look_alpha(0.01, 4, sequential=True)[0])
    assert details["rule_alpha"] == 0.01
    assert v.p_value is not None and v.p_value > 0.1 and not v.regressed
    assert outbox(store) == []


def test_an_alpha_the_test_cannot_reach_is_a_config_error(synthetic: SyntheticSet) -> None:
    from recallwatch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"notifications\.rules\.0: alpha 5e-05 can never fire"):
        make_config(
            synthetic.path,
            [{"name": "reg", "type": "recall_regression", "alpha": 0.00005, "permutations": 1000}],
        )
    with pytest.raises(ConfigError, match=r"notifications\.rules\.0: resolve_alpha"):
        make_config(
            synthetic.path,
            [{"name": "reg", "type": "recall_regression", "alpha": 0.05, "resolve_alpha": 0.01}],
        )
    make_config(synthetic.path, [{"name": "reg", "type": "recall_regression", "alpha": 0.001}])


def test_runbook_url_is_absolute_when_configured(store: Store, synthetic: SyntheticSet) -> None:
    base = "https://git.example/recallwatch/blob/main/docs/runbook.md"
    config = reparse(
        make_config(synthetic.path, []),
        runbook_base_url=base,
        rules=[{"name": "reg", "type": "recall_regression", "channels": ["am"]}],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    (record,) = store.ledger.open_alerts()
    assert record.alert.runbook_url == f"{base}#recallregressionafterminingchange"
    (body,) = store.db.query("SELECT body FROM outbox")
    annotations = json.loads(body[0])[0]["annotations"]
    assert annotations["runbook_url"] == f"{base}#recallregressionafterminingchange"


def test_rules_of_the_same_comparison_get_their_own_verdict_kinds(
    synthetic: SyntheticSet,
) -> None:
    config = make_config(
        synthetic.path,
        [
            {"name": "strict", "type": "recall_regression"},
            {"name": "loose", "type": "recall_regression", "min_drop": 0.5},
            {"name": "same", "type": "recall_regression", "compare_with": "same_mining"},
            {"name": "ndcg", "type": "recall_regression", "metric": "ndcg"},
            {"name": "pinned", "type": "recall_regression", "baseline_checkpoint": "c-1"},
            {"name": "floor", "type": "recall_floor", "floor": 0.5},
        ],
    )
    rules = config.notifications.rules
    kinds = {r.name: verdict_kind(r, rules) for r in rules if isinstance(r, RecallRegressionRule)}
    assert kinds == {
        "strict": "previous_mining",
        "loose": "previous_mining:loose",
        "same": "same_mining",
        "ndcg": "previous_mining",
        "pinned": "pinned",
    }


def test_a_change_of_precision_is_not_a_regression(store: Store, synthetic: SyntheticSet) -> None:
    """A bf16 evaluation is never compared with fp32 ones: no baseline, no verdict, no alert."""
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    for step, mining, h in ((100, A, hits(60)), (200, A, hits(50))):
        alerting.after_checkpoint(run.add(step, mining, h, precision="fp32"))
    other = run.add(300, B, hits(120), precision="bf16")
    alerting.after_checkpoint(other)
    assert outbox(store) == []
    assert store.ledger.verdicts(other.id) == []
    # The same drop in the same precision is compared, and fires.
    alerting.after_checkpoint(run.add(400, B, hits(120), precision="fp32"))
    assert [event for event, _, _ in outbox(store)] == ["firing"]


def _verdict_variance(store: Store, checkpoint_id: int) -> dict[str, object]:
    (verdict,) = store.ledger.verdicts(checkpoint_id)
    variance: dict[str, object] = verdict.details["level"]["checkpoint_variance"]
    return variance


@pytest.mark.parametrize("history", [True, False])
def test_earlier_runs_on_the_same_heldout_set_lend_their_checkpoint_variance(
    store: Store, synthetic: SyntheticSet, history: bool
) -> None:
    rule = {"name": "reg", "type": "recall_regression", "checkpoint_sd_history": history}
    config = make_config(synthetic.path, [rule])
    clock = Clock()
    # Six earlier runs of the shape (2 checkpoints under A, 2 under B) whose same-mining
    # checkpoints differ by churn alone (the same number of misses, other queries): 12 degrees
    # of freedom saying the checkpoint SD is about zero. A run in another precision (bf16) is
    # not comparable and lends nothing.
    for i in range(7):
        past = Run(store, config, synthetic, clock, name=f"past-{i}")
        for step, mining, shift in ((100, A, 0), (200, A, 6), (300, B, 3), (400, B, 9)):
            past.add(step, mining, hits(45, shift=shift + i), precision="bf16" if i == 6 else None)
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(45)))
    alerting.after_checkpoint(run.add(200, A, hits(45, shift=6)))
    # 12 more queries missed (4 points): with the one-point prior alone (and this run's one
    # degree of freedom) not significant at the first look's alpha; with the history it is.
    bad = run.add(300, B, hits(57, shift=3))
    alerting.after_checkpoint(bad)
    variance = _verdict_variance(store, bad.id)
    if history:
        assert (variance["history_runs"], variance["history_df"], variance["data_df"]) == (6, 12, 1)
        (record,) = store.ledger.open_alerts()
        metric = record.alert.evidence.metric
        assert metric is not None and metric.checkpoint_variance is not None
        assumed = metric.checkpoint_variance["assumed"]
        assert "pooled from 6 earlier runs of this held-out set, 12 degrees of freedom" in assumed
        assert assumed in record.alert.description
    else:
        assert (variance["history_runs"], variance["history_df"], variance["data_df"]) == (0, 0, 1)
        assert store.ledger.open_alerts() == []


def test_a_decision_waits_for_an_earlier_checkpoint_still_being_evaluated(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    # The last pre-change checkpoint is still being evaluated when the first post-change one
    # (clearly worse) finishes: no decision yet, no verdict, no alert against checkpoint-100.
    late = run.add(200, A, hits(52, shift=3))
    store.queue.set_state(late.id, "evaluating", clock())
    bad = run.add(300, B, hits(90))
    alerting.after_checkpoint(bad)
    assert store.ledger.verdicts(bad.id) == [] and outbox(store) == []
    # Once it is evaluated the engine decides the newest checkpoint again, against the whole
    # pre-change segment: one alert, keyed on the segment's best checkpoint.
    store.queue.set_state(late.id, "evaluated", clock())
    alerting.after_checkpoint(store.queue.checkpoint_by_id(late.id))
    (record,) = store.ledger.open_alerts()
    assert (
        record.alert.key.baseline == "checkpoint-100"
        and record.alert.checkpoint == "checkpoint-300"
    )
    (verdict,) = store.ledger.verdicts(bad.id)
    assert verdict.details["pre"] == ["checkpoint-100", "checkpoint-200"]
    assert [e for e, _, _ in outbox(store)] == ["firing"]


@pytest.mark.parametrize(
    ("recent", "confirm", "expected"),
    [
        ([True], 1, True),
        ([False], 1, False),
        ([True], 2, False),
        ([False, True, True], 2, True),
        ([True, False, True], 2, False),
        ([True, True, True], 3, True),
        ([], 1, False),
    ],
)
def test_confirmation(recent: list[bool], confirm: int, expected: bool) -> None:
    assert confirmed(recent, confirm) is expected
