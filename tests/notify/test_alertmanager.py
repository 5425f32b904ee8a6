"""Alertmanager: the body and labels, ``endsAt`` per attempt, the API v2 target."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from recallwatch.config import AlertmanagerChannel
from recallwatch.notify.alertmanager import alertmanager_body, alertmanager_labels
from recallwatch.notify.channels import (
    AlertmanagerTarget,
    render,
    target_for,
)
from recallwatch.notify.delivery import Dispatcher
from recallwatch.notify.outbox import MemoryOutbox
from tests.helpers.alerts import T0, regression_alert
from tests.helpers.clock import ManualClock
from tests.helpers.notify import FAST, enqueue
from tests.helpers.processes import wait_for
from tests.helpers.receivers import Receiver


def test_alertmanager_target_sends_bearer_token_to_api_v2(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    am = receiver()
    outbox = MemoryOutbox()
    row = enqueue(outbox, "am", b"[]")
    d = Dispatcher(outbox, {"am": AlertmanagerTarget("am", am.url + "/", "tok-123")})
    dispatchers.append(d)
    d.start()
    wait_for(lambda: outbox.get(row).state == "delivered", timeout=10, what="alertmanager")
    (got,) = am.received()
    assert got.path == "/api/v2/alerts" and got.headers["Authorization"] == "Bearer tok-123"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_alertmanager_ends_at_is_recomputed_per_attempt(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    am = receiver()
    channel = AlertmanagerChannel(
        type="alertmanager", name="am", url=am.url, resend_interval_seconds=60
    )
    clock = ManualClock()
    decided = clock() - 600  # delivered after a ten-minute outage
    firing = regression_alert()
    resolved = regression_alert(status="resolved")
    outbox = MemoryOutbox()
    rows = [
        outbox.add(
            message_id=f"m-{event}",
            alert_id=alert.id,
            channel="am",
            rule="r",
            event=event,
            body=render(channel, alert, event, decided, resend_interval=60),  # type: ignore[arg-type]
            now=decided,
        ).id
        for alert, event in ((firing, "firing"), (resolved, "resolved"))
    ]
    d = Dispatcher(outbox, {"am": target_for(channel)}, policy=FAST, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    sent_after = clock()
    d.start()
    clock.run_until(lambda: all(outbox.get(r).state == "delivered" for r in rows), what="delivery")
    got_firing, got_resolved = (r.json()[0] for r in am.received())
    assert _ts(got_firing["endsAt"]) >= sent_after + 4 * 60 - 0.01  # not already ended
    assert _ts(got_resolved["endsAt"]) == resolved.resolved_at  # a resolved alert keeps its end


def test_alertmanager_body() -> None:
    alert = regression_alert()
    (doc,) = json.loads(alertmanager_body(alert, now=T0 + 60, resend_interval=60))
    assert doc["labels"] == {
        "alertname": "RecallRegressionAfterMiningChange",
        "run": "run-a",
        "severity": "critical",
        "rule": "recall-after-mining",
        "service": "recallwatch",
        "dataset": "scifact",
        "k": "10",
        "baseline": "checkpoint-1000",
    }
    assert set(doc["annotations"]) >= {"summary", "description", "runbook_url", "alert_id"}
    assert doc["startsAt"] == "2026-09-21T14:13:20.000Z"
    assert doc["endsAt"] == "2026-09-21T14:18:20.000Z"  # now + 4 x resend interval
    (res,) = json.loads(
        alertmanager_body(regression_alert(status="resolved"), now=T0 + 9e9, resend_interval=60)
    )
    assert res["endsAt"] == "2026-09-21T15:13:20.000Z"  # the resolution time
    assert res["labels"] == alertmanager_labels(alert)  # same identity: it resolves that alert
