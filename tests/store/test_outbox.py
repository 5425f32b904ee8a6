"""``store/outbox.py``: the dispatcher's ``Outbox``, monotonic counters, Alertmanager re-sends."""

from __future__ import annotations

from recallwatch.records.outbox import AttemptResult
from recallwatch.store import AlertWrite, NewMessage, Store
from recallwatch.store.outbox import REFRESH_RETENTION_SECONDS
from tests.helpers.alerts import T0, regression_alert


def _alert(store: Store, messages: list[NewMessage]) -> str:
    alert = regression_alert()
    store.ledger.apply_alerts(
        [AlertWrite(alert, "firing", opened_at=T0, notified_at=T0, repeats=0)], messages
    )
    return alert.id


def _msg(aid: str, mid: str, channel: str, event: str, at: float) -> NewMessage:
    return NewMessage(mid, aid, channel, "rule", event, b"{}", at)


def test_pending_messages_are_delivered_oldest_first_and_counted(store: Store) -> None:
    aid = regression_alert().id
    _alert(store, [_msg(aid, "m1", "hook", "firing", T0), _msg(aid, "m2", "hook", "repeat", T0)])
    first = store.outbox.next_pending("hook")
    assert first is not None and (first.message_id, first.attempts) == ("m1", 0)
    assert store.outbox.outbox_pending() == {"hook": 2}
    store.outbox.record_attempt(
        first,
        AttemptResult("retry", 503, "HTTP 503"),
        now=T0 + 1,
        state="pending",
        next_attempt_at=T0 + 5,
    )
    again = store.outbox.next_pending("hook")
    assert again is not None and again.message_id == "m1"
    assert (again.attempts, again.last_status, again.last_error) == (1, 503, "HTTP 503")
    store.outbox.record_attempt(
        again, AttemptResult("ok", 200), now=T0 + 5, state="delivered", next_attempt_at=T0 + 5
    )
    second = store.outbox.next_pending("hook")
    assert second is not None and second.message_id == "m2"
    store.outbox.record_attempt(
        second,
        AttemptResult("terminal", 404, "gone"),
        now=T0 + 6,
        state="failed",
        next_attempt_at=T0 + 6,
    )
    assert store.outbox.next_pending("hook") is None
    assert store.outbox.notifications_delivered() == {("hook", "rule"): 1}
    assert store.outbox.notification_failures() == {"hook": 2}  # the 503 and the 404
    assert store.outbox.notifications_failed() == {"hook": 1}
    assert store.outbox.outbox_pending() == {}
    delivered = store.outbox.deliveries(aid)[0]
    assert (delivered.state, delivered.delivered_at) == ("delivered", T0 + 5)


def test_messages_of_removed_channels_fail_and_are_counted(store: Store) -> None:
    aid = regression_alert().id
    _alert(store, [_msg(aid, "m1", "hook", "firing", T0), _msg(aid, "m1", "gone", "firing", T0)])
    assert store.outbox.fail_pending_except(["hook"], T0 + 1) == 1
    assert store.outbox.notifications_failed() == {"gone": 1}
    (lost,) = [m for m in store.outbox.deliveries(aid) if m.channel == "gone"]
    assert (lost.state, lost.last_error) == ("failed", "the channel is no longer configured")
    assert store.outbox.fail_pending_except([], T0 + 2) == 1  # no channel left: every one fails
    assert store.outbox.notifications_failed() == {"gone": 1, "hook": 1}


def test_an_alertmanager_resend_waits_alone_and_is_pruned_once_delivered(store: Store) -> None:
    aid = regression_alert().id
    _alert(store, [_msg(aid, "r1", "am", "refresh", T0), _msg(aid, "r2", "am", "refresh", T0)])
    assert store.outbox.outbox_pending() == {
        "am": 1
    }  # a second re-send while one is pending: dropped
    resend = store.outbox.next_pending("am")
    assert resend is not None and resend.message_id == "r1"
    store.outbox.record_attempt(
        resend, AttemptResult("ok", 200), now=T0 + 1, state="delivered", next_attempt_at=T0 + 1
    )
    assert store.outbox.deliveries(aid) == []  # re-sends are not notifications
    assert store.outbox.notifications_delivered() == {}
    _alert(store, [_msg(aid, "r3", "am", "refresh", T0 + REFRESH_RETENTION_SECONDS)])
    rows = store.db.query("SELECT message_id FROM outbox ORDER BY id")
    assert [r[0] for r in rows] == ["r1", "r3"]  # delivered r1 is not yet old enough to go
    _alert(store, [_msg(aid, "r4", "am", "refresh", T0 + 2 + REFRESH_RETENTION_SECONDS)])
    rows = store.db.query("SELECT message_id FROM outbox ORDER BY id")
    assert [r[0] for r in rows] == ["r3"]  # r1 pruned; r4 dropped while r3 is pending
