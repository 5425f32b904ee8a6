"""The false_negative_rate rule: fires on the lower bound of the FN-rate interval."""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules.false_negative_rate import fn_rate_high
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import REC, A, B, Clock, Run, hits, make_config


def test_fires_on_the_lower_bound_with_the_previous_mining_evidence(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "fn", "type": "false_negative_rate", "threshold": 0.05}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    before = FnEstimate("judge", 200, 8, 0.04, 0.02, 0.07)
    wide = FnEstimate("judge", 50, 4, 0.08, 0.03, 0.19)  # estimate above 5%, lower bound not
    high = FnEstimate("judge", 200, 20, 0.10, 0.062, 0.15, details={"recommendation": REC})
    alerting.after_checkpoint(run.add(100, A, hits(50), fn=before))
    alerting.after_checkpoint(run.add(200, B, hits(50), fn=wide))
    assert store.ledger.open_alerts() == []
    alerting.after_checkpoint(run.add(300, B, hits(50)))  # no estimate: no decision
    alerting.after_checkpoint(run.add(400, B, hits(50), fn=high))
    (record,) = store.ledger.open_alerts()
    alert = record.alert
    assert alert.alertname == "FalseNegativeRateHigh" and alert.key.dataset is None
    assert "lower bound above 5%" in alert.summary
    ev = alert.evidence
    assert ev.fn_before is not None and ev.fn_before.estimate == 0.04  # checkpoint-100 (A)
    assert ev.fn_after is not None and ev.fn_after.estimate == 0.10
    assert [c.key for c in ev.mining_diff] == ["mined_set", "range_min"]
    assert ev.recommendation is not None and ev.recommendation.startswith("set range_min=10")
    assert ev.details == {"threshold": 0.05, "oracle": "judge", "source": "audit"}


def test_fn_rate_high() -> None:
    assert fn_rate_high(0.051, 0.05) and not fn_rate_high(0.05, 0.05)
