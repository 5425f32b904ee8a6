"""The no_recent_evaluation rule: decided on the periodic tick, repeated, resolved."""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.no_recent_evaluation import evaluation_stale
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, hits, make_config, outbox


def test_no_recent_evaluation_and_repeats(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path,
        [{"name": "stale", "type": "no_recent_evaluation", "after_seconds": 600}],
        repeat=3600,
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.tick()
    assert store.ledger.open_alerts() == []
    clock.now += 601
    alerting.tick()
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallwatchNoRecentEvaluation"
    clock.now += 3601
    alerting.tick()  # repeat (Alertmanager channels get re-sends instead of repeats)
    events = [e for e, _, _ in outbox(store)]
    assert events[0] == "firing" and "repeat" not in events and "refresh" in events
    run.add(100, A, hits(10))
    alerting.tick()
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)][-1] == "resolved"


def test_only_the_tick_decides_the_time_based_rule(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path, [{"name": "stale", "type": "no_recent_evaluation", "after_seconds": 600}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    clock.now += 3600
    alerting.after_checkpoint(run.add(100, A, None))  # failed: the run is still stale
    assert store.ledger.open_alerts() == [] and outbox(store) == []
    alerting.tick()
    (record,) = store.ledger.open_alerts()
    assert record.alert.key.run == "r" and record.alert.checkpoint is None


def test_evaluation_stale() -> None:
    assert evaluation_stale(None, since=0.0, now=101.0, after_seconds=100.0)
    assert not evaluation_stale(50.0, since=0.0, now=101.0, after_seconds=100.0)
    assert evaluation_stale(0.5, since=0.0, now=101.0, after_seconds=100.0)
