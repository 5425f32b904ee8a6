"""The evaluation_failing rule: a streak of failed evaluations, counted from the newest."""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.evaluation_failing import failing_streak
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, hits, make_config, outbox


def test_a_streak_fires_and_an_evaluated_checkpoint_resolves_it(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "failing", "type": "evaluation_failing", "consecutive": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, None))
    assert store.ledger.open_alerts() == []
    alerting.after_checkpoint(run.add(200, A, None))
    (record,) = store.ledger.open_alerts()
    details = record.alert.evidence.details
    assert details["consecutive"] == 2 and details["threshold"] == 2
    assert details["reason"] == "bad_embeddings" and details["message"] == "NaN in row 3"
    assert record.alert.checkpoint == "checkpoint-200"
    alerting.after_checkpoint(run.add(300, A, hits(10)))
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]


def test_a_late_older_failure_is_counted_from_the_newest_checkpoint(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "failing", "type": "evaluation_failing", "consecutive": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(300, A, hits(10)))
    alerting.after_checkpoint(run.add(100, A, None))
    alerting.after_checkpoint(run.add(200, A, None))  # two failures, but older than 300
    assert store.ledger.open_alerts() == [] and outbox(store) == []


def test_failing_streak() -> None:
    assert failing_streak([True, False, True, True]) == 2 and failing_streak([]) == 0
