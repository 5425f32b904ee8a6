"""The label_noise_amplification rule: mined ÷ random FN rate above a threshold."""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.label_noise_amplification import amplification_high
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, hits, make_config, outbox


def test_fires_above_the_threshold_and_never_on_an_unknown_amplification(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "amp", "type": "label_noise_amplification", "threshold": 3.0}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    unknown = FnEstimate("judge", 200, 20, 0.10, 0.062, 0.15, amplification=None)
    alerting.after_checkpoint(run.add(100, A, hits(50), fn=unknown))
    assert store.ledger.open_alerts() == []
    alerting.after_checkpoint(
        run.add(
            200, A, hits(50), fn=FnEstimate("judge", 200, 20, 0.1, 0.06, 0.15, amplification=4.0)
        )
    )
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "LabelNoiseAmplificationHigh"
    assert record.alert.summary.startswith("label-noise amplification 4.0x (threshold 3x)")
    assert record.alert.evidence.mining_diff == ()  # no mining change in this run
    alerting.after_checkpoint(
        run.add(
            300, A, hits(50), fn=FnEstimate("judge", 200, 5, 0.03, 0.01, 0.05, amplification=1.2)
        )
    )
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]


def test_amplification_high() -> None:
    assert amplification_high(3.5, 3.0) and not amplification_high(None, 3.0)
    assert not amplification_high(float("inf"), 3.0)
