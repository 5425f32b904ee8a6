"""The recall_floor rule: a metric at k below an absolute floor."""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.recall_floor import below_floor
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, hits, make_config, outbox


def test_fires_below_the_floor_per_held_out_set_and_resolves_above(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "floor", "type": "recall_floor", "k": 10, "floor": 0.7}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(90)))  # recall 0.7: not below the floor
    assert store.ledger.open_alerts() == []
    alerting.after_checkpoint(run.add(200, A, hits(100)))  # 0.667
    (record,) = store.ledger.open_alerts()
    alert = record.alert
    assert alert.alertname == "RecallBelowFloor"
    assert (alert.key.dataset, alert.key.k) == ("synth", 10)
    assert alert.summary == "recall@10 on synth is 0.6667, below the floor 0.7 (r, checkpoint-200)"
    assert alert.evidence.details == {"floor": 0.7, "metric": "recall", "k": 10}
    alerting.after_checkpoint(run.add(300, A, None))  # a failed checkpoint decides nothing
    assert len(store.ledger.open_alerts()) == 1
    alerting.after_checkpoint(run.add(400, A, hits(10)))
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]


def test_below_floor() -> None:
    assert below_floor(0.49, 0.5) and not below_floor(0.5, 0.5)
