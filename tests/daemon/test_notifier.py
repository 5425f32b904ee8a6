"""The Notifier: start (pending messages of removed channels) and catch-up after a crash."""

from __future__ import annotations

from pathlib import Path

from recallwatch.daemon.notifier import Notifier
from recallwatch.store import AlertWrite, NewMessage, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, make_config
from tests.helpers.alerts import regression_alert


def test_pending_messages_of_removed_channels_fail_at_start(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    alert, clock = regression_alert(), Clock()
    store.ledger.apply_alerts(
        [AlertWrite(alert, "firing", opened_at=clock(), notified_at=clock(), repeats=0)],
        [
            NewMessage("m1", alert.id, "gone", "reg", "firing", b"{}", clock()),
            NewMessage("m2", alert.id, "am", "reg", "firing", b"[]", clock()),
        ],
    )
    notifier = Notifier(config, store, clock=clock)
    notifier.start()  # "am" is configured (nothing listens there: it stays pending)
    notifier.stop()
    states = {m.channel: (m.state, m.last_error) for m in store.outbox.deliveries(alert.id)}
    assert states["gone"] == ("failed", "the channel is no longer configured")
    assert states["am"][0] == "pending"


def test_catch_up_decides_a_failing_streak_left_undecided_by_a_crash(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "failing", "type": "evaluation_failing", "consecutive": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    for step in (100, 200):
        run.add(step, A, None)  # failed, and the daemon died before deciding
    notifier = Notifier(config, store, clock=clock)
    notifier.catch_up()
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallwatchEvaluationFailing"
    assert record.alert.checkpoint == "checkpoint-200"


def test_decisions_that_raise_are_counted_by_stage(tmp_path: Path, synthetic: SyntheticSet) -> None:
    """A decision on a store that cannot be read (closed under it) raises inside the notifier:
    logged and counted by stage (``recallwatch_alert_decision_failures_total``), never raised
    into the daemon's evaluation or scheduler threads."""
    config = make_config(
        synthetic.path, [{"name": "failing", "type": "evaluation_failing", "consecutive": 2}]
    )
    clock = Clock()
    store = Store.open(tmp_path / "rw.db")
    run = Run(store, config, synthetic, clock)
    run.add(100, A, None)
    (row,) = store.queue.checkpoints("r", states=["failed"])
    notifier = Notifier(config, store, clock=clock)
    assert notifier.decision_failures == {"checkpoint": 0, "early": 0, "tick": 0}
    store.close()
    notifier.after_checkpoint(row)
    notifier.after_checkpoint(row)
    notifier.tick()
    assert notifier.decision_failures == {"checkpoint": 2, "early": 0, "tick": 1}
