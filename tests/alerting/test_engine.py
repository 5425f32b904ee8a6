"""The decision loop over a real SQLite store: dispatch, verdicts, late checkpoints, ticks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules import RULE_TYPES, AlertRule, Decision, register
from recallwatch.errors import ConfigError
from recallwatch.records.alert import Alert, AlertKey, Evidence
from recallwatch.store import CheckpointRow, FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, B, Clock, Run, hits, make_config, outbox, reparse


def test_fn_rate_floor_and_failing_rules(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path,
        [
            {"name": "fn", "type": "false_negative_rate", "threshold": 0.05},
            {"name": "amp", "type": "label_noise_amplification", "threshold": 3.0},
            {"name": "floor", "type": "recall_floor", "k": 10, "floor": 0.7},
            {"name": "failing", "type": "evaluation_failing", "consecutive": 2},
        ],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    high = FnEstimate("judge", 200, 20, 0.10, 0.062, 0.15, amplification=4.0)
    unsure = FnEstimate("judge", 200, 12, 0.06, 0.034, 0.10, amplification=2.0)
    alerting.after_checkpoint(run.add(100, A, hits(50), fn=unsure))
    assert store.ledger.open_alerts() == []  # lower bound 3.4% is not above 5%
    alerting.after_checkpoint(run.add(200, B, hits(100), fn=high))
    names = sorted(r.rule for r in store.ledger.open_alerts())
    assert names == ["amp", "floor", "fn"]
    fn_alert = next(r.alert for r in store.ledger.open_alerts() if r.rule == "fn")
    assert fn_alert.alertname == "FalseNegativeRateHigh"
    assert fn_alert.evidence.fn_before is not None and fn_alert.evidence.fn_before.estimate == 0.06
    alerting.after_checkpoint(run.add(300, B, None))
    assert "failing" not in {r.rule for r in store.ledger.open_alerts()}  # one failure in a row
    alerting.after_checkpoint(run.add(400, B, None))
    failing = next(r.alert for r in store.ledger.open_alerts() if r.rule == "failing")
    assert failing.alertname == "RecallwatchEvaluationFailing"
    assert failing.evidence.details["reason"] == "bad_embeddings"
    alerting.after_checkpoint(run.add(500, B, hits(10), fn=unsure))
    assert store.ledger.open_alerts() == []  # everything resolved


def test_firing_alerts_repeat_on_ticks_and_two_rules_keep_their_own_verdicts(
    store: Store, synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hook")
    config = reparse(
        make_config(synthetic.path, [], repeat=3600),
        channels=[
            {"name": "hook", "type": "webhook", "url_env": "HOOK_URL"},
            {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"},
        ],
        rules=[
            {"name": "strict", "type": "recall_regression", "channels": ["hook", "am"]},
            {"name": "loose", "type": "recall_regression", "min_drop": 0.5, "channels": ["hook"]},
        ],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    bad = run.add(200, B, hits(80))
    alerting.after_checkpoint(bad)
    kinds = {v.kind: v.regressed for v in store.ledger.verdicts(bad.id)}
    assert kinds == {"previous_mining": True, "previous_mining:loose": False}
    assert [(e, c) for e, c, _ in outbox(store)] == [("firing", "hook"), ("firing", "am")]
    clock.now += 3599
    alerting.tick()
    assert [e for e, _, _ in outbox(store)] == ["firing", "firing", "refresh"]  # no repeat yet
    clock.now += 2
    alerting.tick()
    alerting.tick()
    events = [(e, c) for e, c, _ in outbox(store)]
    assert events.count(("repeat", "hook")) == 1 and ("repeat", "am") not in events
    assert ("refresh", "am") in events  # Alertmanager gets re-sends instead
    (record,) = store.ledger.open_alerts()
    assert record.repeats == 1


def test_a_late_older_checkpoint_does_not_decide_for_the_newest(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    newest = run.add(300, B, hits(80))  # regressed, and finishes first
    alerting.after_checkpoint(newest)
    (record,) = store.ledger.open_alerts()
    late = run.add(200, B, hits(50))  # an older, healthy checkpoint finishes later
    alerting.after_checkpoint(late)
    assert [r.alert.id for r in store.ledger.open_alerts()] == [record.alert.id]
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    (v,) = store.ledger.verdicts(late.id)  # its verdict is still recorded
    assert not v.regressed
    alerting.after_checkpoint(store.queue.checkpoint_by_id(newest.id))  # e.g. catch_up: nothing new
    assert [e for e, _, _ in outbox(store)] == ["firing"]


def test_a_late_older_regressed_checkpoint_does_not_fire(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(300, B, hits(50)))
    late = run.add(200, B, hits(80))
    alerting.after_checkpoint(late)
    assert store.ledger.open_alerts() == [] and outbox(store) == []
    (v,) = store.ledger.verdicts(late.id)
    assert v.regressed


# -- a rule type registered from here, not from the engine --------------------------------------


class StepAtLeastRule(BaseModel):
    """The config model of a rule type that exists only in this test module."""

    type: Literal["step_at_least"] = "step_at_least"
    name: str
    channels: list[str]
    runs: list[str] = []
    severity: str = "info"
    step: int


class StepAtLeast(AlertRule[StepAtLeastRule]):
    """Fires while the run's checkpoint has reached a step; ``broken`` makes it raise."""

    type = "step_at_least"
    alertname = "StepAtLeast"
    broken = False

    def decide(self, row: CheckpointRow) -> list[Decision]:
        if self.broken:
            raise RuntimeError("a broken rule")
        key = AlertKey(self.config.name, row.run)
        what = f"{row.name} reached step {self.config.step}"

        def build(aid: str) -> Alert:
            return self.new_alert(aid, key, row, what, what, Evidence(details={"step": row.step}))

        firing = row.step is not None and row.step >= self.config.step
        return [self.decision(key, firing, row.name, build, row)]


@pytest.fixture
def step_rule() -> Iterator[type[StepAtLeast]]:
    """``StepAtLeast`` registered for the test, unregistered after it."""
    register(StepAtLeast)
    yield StepAtLeast
    del RULE_TYPES[StepAtLeast.type]


def with_rule(config: Any, rule: BaseModel) -> Any:
    config.notifications.rules.append(rule)  # not in config.Rule: validation does not know it
    return config


def test_a_rule_type_registered_by_a_test_is_dispatched(
    store: Store, synthetic: SyntheticSet, step_rule: type[StepAtLeast]
) -> None:
    config = with_rule(
        make_config(synthetic.path, [{"name": "floor", "type": "recall_floor", "floor": 0.1}]),
        StepAtLeastRule(name="far", channels=["am"], step=200),
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    assert [type(r) for r in alerting.rules][-1] is step_rule
    alerting.after_checkpoint(run.add(100, A, hits(10)))
    assert store.ledger.open_alerts() == []
    alerting.after_checkpoint(run.add(200, A, hits(10)))
    (record,) = store.ledger.open_alerts()
    assert record.rule == "far" and record.alert.rule_type == "step_at_least"
    assert record.alert.alertname == "StepAtLeast" and record.alert.severity == "info"
    assert record.alert.evidence.details == {"step": 200}
    assert [(e, c) for e, c, _ in outbox(store)] == [("firing", "am")]


def test_a_broken_rule_does_not_silence_the_others(
    store: Store,
    synthetic: SyntheticSet,
    step_rule: type[StepAtLeast],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(step_rule, "broken", True)
    config = with_rule(
        make_config(synthetic.path, [{"name": "floor", "type": "recall_floor", "floor": 0.9}]),
        StepAtLeastRule(name="far", channels=["am"], step=0),
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(100)))
    assert [r.rule for r in store.ledger.open_alerts()] == ["floor"]


def test_a_rule_type_nobody_registered_is_a_config_error(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = with_rule(
        make_config(synthetic.path, []), StepAtLeastRule(name="far", channels=["am"], step=0)
    )
    with pytest.raises(ConfigError, match="no rule type 'step_at_least' is registered"):
        Alerting(config, store, clock=Clock())


def test_the_package_re_exports_the_engine() -> None:
    from recallwatch import alerting

    assert alerting.Alerting is Alerting


def test_backfill_checkpoints_record_alerts_without_paging_again(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    assert config.notifications.backfill_quiet_seconds == 86400  # the default
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    # A fresh store over a run with history: checkpoints completed days before they are found.
    alerting.after_checkpoint(run.add(100, A, hits(50), completed_ago=3 * 86400))
    old = run.add(200, B, hits(80), completed_ago=2 * 86400)
    alerting.after_checkpoint(old)
    (record,) = store.ledger.open_alerts()  # recorded: state, verdict, API
    assert record.alert.checkpoint == old.name
    assert [v.regressed for v in store.ledger.verdicts(old.id)] == [True]
    assert outbox(store) == []  # but not sent: an earlier store may have sent it
    assert alerting.suppressed == {"backfill": 1}  # and counted
    # A checkpoint completed now decides as usual: its resolve is sent.
    alerting.after_checkpoint(run.add(300, A, hits(50), completed_ago=60))
    assert store.ledger.open_alerts() == []
    assert [(e, c) for e, c, _ in outbox(store)] == [("resolved", "am")]
    alerting.after_checkpoint(run.add(400, B, hits(80)))
    assert [e for e, _, _ in outbox(store)] == ["resolved", "firing"]


def test_backfill_quiet_seconds_null_sends_everything(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = reparse(
        make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}]),
        backfill_quiet_seconds=None,
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50), completed_ago=3 * 86400))
    alerting.after_checkpoint(run.add(200, B, hits(80), completed_ago=2 * 86400))
    assert [e for e, _, _ in outbox(store)] == ["firing"]


def test_reconfigure_switches_thresholds_at_once_and_an_unbuildable_config_changes_nothing(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "floor", "type": "recall_floor", "floor": 0.1}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    assert store.ledger.open_alerts() == []
    rule = {"name": "floor", "type": "recall_floor", "floor": 0.9, "channels": ["am"]}
    raised = reparse(config, rules=[rule])
    far = StepAtLeastRule(name="far", channels=["am"], step=0)
    broken = with_rule(reparse(config, rules=[rule]), far)
    with pytest.raises(ConfigError, match="no rule type 'step_at_least' is registered"):
        alerting.reconfigure(broken)
    assert alerting.config is config  # nothing swapped: still the old threshold
    alerting.after_checkpoint(run.add(200, A, hits(50)))
    assert store.ledger.open_alerts() == []
    alerting.reconfigure(raised)
    alerting.after_checkpoint(run.add(300, A, hits(50)))
    assert [r.rule for r in store.ledger.open_alerts()] == ["floor"]
