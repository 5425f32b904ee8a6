"""``store/ledger.py``: typed verdicts, alert episodes, and alerts written with their messages."""

from __future__ import annotations

from dataclasses import replace

from recallwatch.store import AlertWrite, NewMessage, Store, VerdictRow
from tests.helpers.alerts import T0, regression_alert
from tests.helpers.seed import add


def test_verdicts_are_typed_rows_one_per_kind(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    base, cid = add(store, run, 1), add(store, run, 2)
    common = {"dataset": "synth", "metric": "recall", "k": 10, "value": 0.7}
    store.ledger.record_verdict(cid, kind="previous", regressed=False, now=5.0, **common)  # type: ignore[arg-type]
    store.ledger.record_verdict(
        cid,
        kind="previous_mining",
        regressed=True,
        now=6.0,
        baseline_checkpoint_id=base,
        baseline_value=0.75,
        p_value=0.001,
        details={"alpha": 0.01, "queries": [1, 2]},
        **common,  # type: ignore[arg-type]
    )
    store.ledger.record_verdict(cid, kind="previous", regressed=True, now=7.0, **common)  # type: ignore[arg-type]
    previous, mining = store.ledger.verdicts(cid)  # one per kind, ordered by kind
    assert isinstance(mining, VerdictRow)
    assert (previous.kind, previous.regressed, previous.created_at) == ("previous", True, 7.0)
    assert (previous.baseline_checkpoint_id, previous.p_value, previous.details) == (None, None, {})
    assert (mining.dataset, mining.metric, mining.k, mining.value) == ("synth", "recall", 10, 0.7)
    assert (mining.baseline_checkpoint_id, mining.baseline_value) == (base, 0.75)
    assert mining.regressed is True and mining.p_value == 0.001
    assert mining.details == {"alpha": 0.01, "queries": [1, 2]}  # decoded JSON
    assert store.ledger.verdicts(base) == []


def test_alert_episodes_open_and_resolve(store: Store) -> None:
    firing = regression_alert()
    key = firing.key.as_string()
    assert store.ledger.open_alert(key) is None and store.ledger.count_episodes(key) == 0
    store.ledger.apply_alerts(
        [AlertWrite(firing, "firing", opened_at=T0, notified_at=T0, repeats=0)],
        [NewMessage("m1", firing.id, "hook", firing.key.rule, "firing", b"{}", T0)],
    )
    record = store.ledger.open_alert(key)
    assert record is not None and record.alert == firing and record.status == "firing"
    assert (record.key, record.rule, record.opened_at, record.repeats) == (
        key,
        firing.key.rule,
        T0,
        0,
    )
    assert [r.alert.id for r in store.ledger.open_alerts(rule=firing.key.rule, run="run-a")] == [
        firing.id
    ]
    assert store.ledger.open_alerts(run="other") == []
    resolved = regression_alert(status="resolved")
    store.ledger.apply_alerts(
        [AlertWrite(resolved, "resolved", opened_at=T0, notified_at=T0 + 60, repeats=0)], []
    )
    assert store.ledger.open_alert(key) is None
    assert store.ledger.count_episodes(key) == 1  # the same episode, resolved
    again = replace(firing, id="al_second")
    store.ledger.apply_alerts(
        [AlertWrite(again, "firing", opened_at=T0 + 100, notified_at=T0 + 100, repeats=0)], []
    )
    assert store.ledger.count_episodes(key) == 2
    assert [a.alert.id for a in store.ledger.alerts()] == ["al_second", firing.id]  # newest first
    assert store.ledger.count_alerts() == 2 and store.ledger.count_alerts(status="firing") == 1
    old = store.ledger.alert(firing.id)
    assert old is not None and old.status == "resolved" and old.last_notified_at == T0 + 60
    assert old.resolved_at == resolved.resolved_at
    assert store.ledger.alert("al_none") is None


def test_an_alert_and_its_messages_are_written_once(store: Store) -> None:
    alert = regression_alert()
    write = AlertWrite(alert, "firing", opened_at=T0, notified_at=T0, repeats=0)
    message = NewMessage("m1", alert.id, "hook", alert.key.rule, "firing", b"{}", T0)
    for _ in range(2):  # a re-run of the same decision
        store.ledger.apply_alerts([write], [message])
    assert store.ledger.count_alerts() == 1
    assert [m.message_id for m in store.outbox.deliveries(alert.id)] == ["m1"]
