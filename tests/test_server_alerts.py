"""``GET /api/v1/alerts``: evidence, delivery state and attempts, paging, filters, 404."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.records.outbox import AttemptResult
from recallwatch.server import create_app
from recallwatch.store import AlertWrite, NewMessage, Store
from tests.helpers.alerts import T0, regression_alert


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    store = Store.open(tmp_path / "rw.db")
    resolved = regression_alert(status="resolved")
    older = AlertWrite(resolved, "resolved", opened_at=T0 - 100, notified_at=T0, repeats=1)
    store.ledger.apply_alerts(
        [older],
        [NewMessage("m0", resolved.id, "hook", "r", "resolved", b"{}", T0)],
    )
    other = replace(regression_alert(), id="al_other")
    store.ledger.apply_alerts(
        [AlertWrite(other, "firing", opened_at=T0, notified_at=T0, repeats=0)],
        [
            NewMessage("m1", "al_other", "hook", "r", "firing", b"{}", T0),
            NewMessage("m2", "al_other", "slack", "r", "firing", b"{}", T0),
            NewMessage("m3", "al_other", "am", "r", "refresh", b"[]", T0),
        ],
    )
    hook = store.outbox.next_pending("hook")
    assert hook is not None and hook.message_id == "m0"
    store.outbox.record_attempt(
        hook, AttemptResult("ok", 200), now=T0 + 1, state="delivered", next_attempt_at=T0 + 1
    )
    hook = store.outbox.next_pending("hook")
    assert hook is not None and hook.message_id == "m1"
    store.outbox.record_attempt(
        hook,
        AttemptResult("terminal", 404, "HTTP error 404: gone"),
        now=T0 + 2,
        state="failed",
        next_attempt_at=T0 + 2,
    )
    app = create_app(store, CollectorRegistry(), readiness=lambda: {"ready": True}, version="1")
    with TestClient(app) as c:
        yield c, store
    store.close()


def test_alerts_list_with_deliveries(client: tuple[TestClient, Store]) -> None:
    c, _ = client
    page = c.get("/api/v1/alerts").json()
    assert page["total"] == 2 and page["next_offset"] is None
    # ``items`` like every listing; ``alerts`` is the same list under its deprecated key.
    assert page["alerts"] == page["items"] and len(page["items"]) == 2
    newest = page["items"][0]
    assert newest["id"] == "al_other" and newest["status"] == "firing"
    deliveries = {d["channel"]: d for d in newest["deliveries"]}
    assert set(deliveries) == {"hook", "slack"}  # Alertmanager re-sends are not listed
    assert deliveries["hook"]["state"] == "failed"
    assert deliveries["hook"]["attempts"] == 1
    assert deliveries["hook"]["last_error"] == "HTTP error 404: gone"
    assert deliveries["slack"]["state"] == "pending" and deliveries["slack"]["attempts"] == 0
    assert newest["alert"]["evidence"]["metric"]["p_value"] == 1e-4
    resolved = c.get("/api/v1/alerts", params={"status": "resolved"}).json()
    assert [a["status"] for a in resolved["items"]] == ["resolved"]
    assert resolved["items"][0]["deliveries"][0]["delivered_at"] == T0 + 1
    second = c.get("/api/v1/alerts", params={"limit": 1}).json()
    assert second["next_offset"] == 1 and len(second["items"]) == 1 == len(second["alerts"])


def test_one_alert_and_not_found(client: tuple[TestClient, Store]) -> None:
    c, _ = client
    assert c.get("/api/v1/alerts/al_other").json()["rule"] == "recall-after-mining"
    missing = c.get("/api/v1/alerts/al_nope")
    assert missing.status_code == 404 and "al_nope" in missing.json()["detail"]
    assert c.get("/api/v1/alerts", params={"status": "bogus"}).status_code == 422


def test_notification_metrics(client: tuple[TestClient, Store]) -> None:
    _, store = client
    registry = CollectorRegistry()
    registry.register(
        RecallwatchCollector(store, version="1", channels=["hook", "slack", "am", "idle"])
    )
    text = generate_latest(registry).decode()
    assert 'recallwatch_notifications_total{channel="hook",rule="r"} 1.0' in text
    assert 'recallwatch_notification_failures_total{channel="hook"} 1.0' in text
    assert 'recallwatch_outbox_pending{channel="slack"} 1.0' in text
    assert 'recallwatch_outbox_pending{channel="am"} 1.0' in text
    assert 'recallwatch_outbox_pending{channel="idle"} 0.0' in text
