"""Delivery review fixes, each against a real HTTP receiver on loopback."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from recallwatch.config import AlertmanagerChannel, WebhookChannel
from recallwatch.exporter import RecallwatchCollector
from recallwatch.notify.channels import (
    AlertmanagerTarget,
    SlackTarget,
    WebhookTarget,
    render,
    target_for,
)
from recallwatch.notify.delivery import (
    AttemptResult,
    Dispatcher,
    MemoryOutbox,
    Outgoing,
    RetryPolicy,
    new_session,
    send_once,
)
from recallwatch.notify.webhook import verify, webhook_body
from recallwatch.store import AlertWrite, NewMessage, Store
from tests.alerting.receivers import Received, Receiver, Reply, always, first
from tests.alerting.samples import regression_alert
from tests.daemon.helpers import wait_for

FAST = RetryPolicy(base=0.05, factor=2.0, cap=0.4, jitter=0.5)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def dispatchers() -> Iterator[list[Dispatcher]]:
    made: list[Dispatcher] = []
    yield made
    for d in made:
        d.stop()


def test_alertmanager_ends_at_is_recomputed_per_attempt(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    am = receiver()
    channel = AlertmanagerChannel(
        type="alertmanager", name="am", url=am.url, resend_interval_seconds=60
    )
    decided = time.time() - 600  # delivered after a ten-minute outage
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
    d = Dispatcher(outbox, {"am": target_for(channel)}, policy=FAST)
    dispatchers.append(d)
    sent_after = time.time()
    d.start()
    wait_for(
        lambda: all(outbox.get(r).state == "delivered" for r in rows), timeout=10, what="delivery"
    )
    got_firing, got_resolved = (r.json()[0] for r in am.received())
    assert _ts(got_firing["endsAt"]) >= sent_after + 4 * 60 - 0.01  # not already ended
    assert _ts(got_resolved["endsAt"]) == resolved.resolved_at  # a resolved alert keeps its end


# -- attempts that break after the request was sent -----------------------------------------------


Handler = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    """A server that does not print the errors of clients that hang up on purpose."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore the error."""


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], str]]:
    """A factory of ThreadingHTTPServers on 127.0.0.1:0 that answer by hand; yields base URLs."""
    servers: list[_QuietServer] = []

    def make(answer: Handler) -> str:
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer(self)
                self.close_connection = True

        server = _QuietServer(("127.0.0.1", 0), H)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        host, port = server.server_address[:2]
        return f"http://{host!s}:{port}"

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _broken_chunked_503(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")


def _trickle(status: int) -> Handler:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Length: 40\r\n\r\n".encode())
        with suppress(OSError):
            for _ in range(20):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.2)

    return answer


def _trickle_headers(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    with suppress(OSError):
        for i in range(20):
            h.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
            h.wfile.flush()
            time.sleep(0.2)


def test_a_broken_body_after_a_503_is_retried(raw_server: Callable[[Handler], str]) -> None:
    with requests.Session() as s:
        r = send_once(s, Outgoing(raw_server(_broken_chunked_503) + "/hook", b"{}"), timeout=3)
    assert (r.outcome, r.status) == ("retry", 503)


@pytest.mark.parametrize("status", [200, 503])
def test_a_trickled_body_does_not_hold_the_attempt_past_its_timeout(
    raw_server: Callable[[Handler], str], status: int
) -> None:
    with requests.Session() as s:
        t0 = time.monotonic()
        r = send_once(s, Outgoing(raw_server(_trickle(status)), b"{}"), timeout=1.0)
        took = time.monotonic() - t0
    assert r.status == status and r.outcome == ("ok" if status == 200 else "retry")
    assert took < 1.8


def test_trickled_headers_time_out_at_the_deadline(raw_server: Callable[[Handler], str]) -> None:
    with new_session() as s:
        t0 = time.monotonic()
        r = send_once(s, Outgoing(raw_server(_trickle_headers), b"{}"), timeout=1.0)
        took = time.monotonic() - t0
    assert (r.outcome, r.error) == ("retry", "timed out after 1 s")
    assert took < 1.8


@pytest.mark.parametrize(
    "url",
    [
        "http://" + "a" * 70 + ".com/SECRET6",  # urllib3's LocationParseError, not requests'
        "http://[::1/services/SECRET3",
    ],
)
def test_a_malformed_url_is_terminal_and_never_named(url: str) -> None:
    with requests.Session() as s:
        r = send_once(s, Outgoing(url, b"{}"), timeout=1)
    assert r.outcome == "terminal" and (r.error or "").startswith("request not sent")
    assert "SECRET" not in repr(r) and "aaaa" not in repr(r)


# -- Standard Webhooks interop --------------------------------------------------------------------

RAW_SECRET = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("ours", [RAW_SECRET, "whsec_" + RAW_SECRET])
@pytest.mark.parametrize("theirs", [RAW_SECRET, "whsec_" + RAW_SECRET])
def test_signatures_interoperate_with_the_reference_library(
    receiver: Callable[..., Receiver], ours: str, theirs: str
) -> None:
    sw = pytest.importorskip("standardwebhooks")
    hook = receiver()
    body = webhook_body(regression_alert(), "firing", time.time())
    message = MemoryOutbox().add(
        message_id="msg_interop",
        alert_id="a",
        channel="hook",
        rule="r",
        event="firing",
        body=body,
        now=time.time(),
    )
    with requests.Session() as s:
        target = WebhookTarget("hook", hook.url + "/in", ours)
        r = send_once(s, target.request(message, time.time()), timeout=5)
    assert r.outcome == "ok"
    (got,) = hook.received()
    assert sw.Webhook(theirs).verify(got.body, got.headers)["type"] == "alert.firing"  # ours -> ref
    now = int(time.time())
    signature = sw.Webhook(theirs).sign("msg_ref", datetime.fromtimestamp(now, UTC), body.decode())
    headers = {
        "webhook-id": "msg_ref",
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }
    assert verify(ours, headers, body, now=now) == "msg_ref"  # ref -> ours


@pytest.mark.parametrize("secret", ["whsec-123", "not base64!", "whsec_not base64!", "whsec_%%%"])
def test_a_secret_that_is_not_base64_is_refused_when_the_config_loads(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("RW_HOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("RW_HOOK_SECRET", secret)
    with pytest.raises(ValidationError, match=r"base64|empty") as err:
        WebhookChannel(
            type="webhook", name="hook", url_env="RW_HOOK_URL", secret_env="RW_HOOK_SECRET"
        )
    assert secret not in str(err.value)


# -- notification counters ------------------------------------------------------------------------


def _metrics(store: Store) -> str:
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1", channels=["am", "hook", "idle"]))
    return generate_latest(registry).decode()


def test_notification_counters_never_go_down_and_count_messages_failed_for_good(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher], tmp_path: Path
) -> None:
    am = receiver(first(1, Reply(500, body=b"down")))
    gone = receiver(always(Reply(404, body=b"no such hook")))
    store = Store.open(tmp_path / "rw.db")
    alert = regression_alert()
    t0 = time.time()

    def message(mid: str, channel: str, event: str, at: float) -> NewMessage:
        return NewMessage(mid, alert.id, channel, "r", event, b"[]", at)

    write = AlertWrite(alert, "firing", opened_at=t0, notified_at=t0, repeats=0)
    store.ledger.apply_alerts(
        [write], [message("r1", "am", "refresh", t0), message("h1", "hook", "firing", t0)]
    )
    targets = {"am": AlertmanagerTarget("am", am.url), "hook": WebhookTarget("hook", gone.url)}
    d = Dispatcher(store, targets, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: not store.outbox.outbox_pending(), timeout=10, what="delivery and failure")
    d.stop()
    before = _metrics(store)
    for line in (
        'recallwatch_notification_failures_total{channel="am"} 1.0',
        'recallwatch_notification_failures_total{channel="hook"} 1.0',
        'recallwatch_notification_failures_total{channel="idle"} 0.0',
        'recallwatch_notifications_failed_total{channel="am"} 0.0',
        'recallwatch_notifications_failed_total{channel="hook"} 1.0',
        'recallwatch_notifications_failed_total{channel="idle"} 0.0',
    ):
        assert line in before
    # An hour later the delivered re-send is pruned; the counters stay where they were.
    store.ledger.apply_alerts([], [message("r2", "am", "refresh", time.time() + 3700)])
    after = _metrics(store)
    assert 'recallwatch_notification_failures_total{channel="am"} 1.0' in after
    assert 'recallwatch_notifications_failed_total{channel="hook"} 1.0' in after
    assert store.outbox.fail_pending_except(["hook"], time.time()) == 1  # the am channel is removed
    assert store.outbox.notifications_failed() == {"am": 1, "hook": 1}
    store.close()


# -- response snippets --------------------------------------------------------------------------


def test_a_404_page_echoing_the_url_is_scrubbed_from_errors_and_logs(
    receiver: Callable[..., Receiver],
    dispatchers: list[Dispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def echo(n: int, r: Received) -> Reply:
        page = f"<pre>Cannot POST {r.path} (user hookuser, {unquote(r.path)})</pre>"
        return Reply(404, body=page.encode())

    hook = receiver(echo)
    host = hook.url.removeprefix("http://")
    url = f"http://hookuser:pw-secret-1@{host}/services/T0/B0/SECRETxyz%2Fz?token=tok-secret-2"
    outbox = MemoryOutbox()
    row = outbox.add(
        message_id="m", alert_id="a", channel="slack", rule="r", event="firing", body=b"{}", now=0
    )
    d = Dispatcher(outbox, {"slack": SlackTarget("slack", url, min_interval=0.0)}, policy=FAST)
    dispatchers.append(d)
    with caplog.at_level(logging.DEBUG):
        d.start()
        wait_for(lambda: outbox.get(row.id).state == "failed", timeout=10, what="the 404")
        d.stop()
    error = outbox.get(row.id).last_error or ""
    assert error.startswith("HTTP error 404: <pre>Cannot POST [redacted]")
    for secret in ("SECRETxyz", "tok-secret-2", "hookuser", "pw-secret-1", "/services/"):
        assert secret not in error and secret not in caplog.text


def test_the_counter_migration_starts_from_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "rw.db"
    store = Store.open(path)
    alert = regression_alert()
    write = AlertWrite(alert, "firing", opened_at=0, notified_at=0, repeats=0)
    store.ledger.apply_alerts([write], [NewMessage("h1", alert.id, "hook", "r", "firing", b"{}", 0)])
    message = store.outbox.next_pending("hook")
    assert message is not None
    for state in ("pending", "failed"):
        result = AttemptResult("retry" if state == "pending" else "terminal", 500, "HTTP error 500")
        store.outbox.record_attempt(message, result, now=0, state=state, next_attempt_at=0)  # type: ignore[arg-type]
    store.close()
    with closing(sqlite3.connect(path)) as conn:  # as a store of schema 3 had it
        conn.execute("DROP TABLE notification_counters")
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
    store = Store.open(path)
    assert store.outbox.notification_failures() == {"hook": 2}
    assert store.outbox.notifications_failed() == {"hook": 1}
    store.close()
