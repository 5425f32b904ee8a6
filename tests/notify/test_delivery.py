"""Delivery (``notify/delivery.py``) against real HTTP receivers that fail on purpose."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.notify.channels import (
    AlertmanagerTarget,
    SlackTarget,
    WebhookTarget,
)
from recallwatch.notify.delivery import Dispatcher
from recallwatch.notify.http import Outgoing, new_session, send_once
from recallwatch.notify.outbox import MemoryOutbox
from recallwatch.notify.webhook import verify, webhook_body
from recallwatch.records.alert import message_id
from recallwatch.records.outbox import AttemptResult
from recallwatch.retry import RetryPolicy
from recallwatch.store import AlertWrite, NewMessage, Store
from tests.helpers.alerts import regression_alert
from tests.helpers.clock import ManualClock
from tests.helpers.notify import FAST, SECRET, enqueue
from tests.helpers.processes import wait_for
from tests.helpers.receivers import CLOSE, HANG, OK, Received, Receiver, Reply, always, first


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_send_once_outcomes(receiver: Callable[..., Receiver], session: requests.Session) -> None:
    def attempt(reply: Reply, timeout: float = 5.0) -> AttemptResult:
        url = receiver(always(reply)).url + "/hook"
        return send_once(session, Outgoing(url, b"{}"), timeout=timeout)

    assert attempt(OK).outcome == "ok"
    r = attempt(Reply(429, {"Retry-After": "2"}))
    assert (r.outcome, r.status, r.retry_after) == ("retry", 429, 2.0)
    r = attempt(Reply(400, body=b"invalid_blocks"))
    assert (r.outcome, r.error) == ("terminal", "HTTP error 400: invalid_blocks")
    r = attempt(Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}))
    assert (r.outcome, r.error) == ("terminal", "redirect not followed 302")
    r = attempt(HANG, timeout=0.3)
    assert (r.outcome, r.error) == ("retry", "timed out after 0.3 s")
    r = attempt(CLOSE)
    assert r.outcome == "retry" and r.error in {
        "connection closed by the receiver",
        "connection error",
    }
    with requests.Session() as s:  # nothing listens there any more
        dead = receiver()
        url = dead.url
        dead.stop()
        r = send_once(s, Outgoing(url, b"{}"), timeout=2)
    assert (r.outcome, r.error) == ("retry", "connection refused")


def test_500_then_200_delivers_once_with_the_same_webhook_id(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    hook = receiver(first(3, Reply(500, body=b"down")))
    outbox = MemoryOutbox()
    alert = regression_alert()
    clock = ManualClock()
    body = webhook_body(alert, "firing", clock())
    row = enqueue(outbox, "hook", body, now=clock())
    target = WebhookTarget("hook", hook.url + "/in", SECRET)
    d = Dispatcher(outbox, {"hook": target}, policy=FAST, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    d.start()
    clock.run_until(lambda: outbox.get(row).state == "delivered", what="delivery")
    got = hook.received()
    assert len(got) == 4  # three 500s, then delivered once and never again
    ids = {r.headers["webhook-id"] for r in got}
    assert ids == {message_id(alert.id, "firing")}
    for r in got:  # every attempt is signed (with its own timestamp), verifies, same bytes
        assert verify(SECRET, r.headers, r.body, now=clock()) == message_id(alert.id, "firing")
        assert r.body == body
    # The attempts came when the dispatcher scheduled them, after its backoff waits.
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(outbox.attempts)]
    assert gaps == pytest.approx(clock.waits[:3])
    assert all(g >= 0.025 for g in gaps)  # backed off (base 0.05 s, jitter down to half)
    assert outbox.get(row).attempts == 4
    waits = len(clock.waits)  # nothing more arrives after delivery: two idle waits pass
    clock.run_until(lambda: len(clock.waits) >= waits + 2, what="the worker to idle")
    assert len(hook.received()) == 4


def test_429_retry_after_is_honoured(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    hook = receiver(first(1, Reply(429, {"Retry-After": "2"}, b"slow down")))
    outbox = MemoryOutbox()
    clock = ManualClock()
    row = enqueue(outbox, "hook", b"{}", now=clock())
    target = WebhookTarget("hook", hook.url, SECRET)
    d = Dispatcher(outbox, {"hook": target}, policy=FAST, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    d.start()
    clock.run_until(lambda: outbox.get(row).state == "delivered", what="delivery")
    assert len(hook.received()) == 2
    first_at, second_at = (at for _, _, at in outbox.attempts)
    assert clock.waits[0] == 2.0  # the one wait between them: the receiver's Retry-After
    assert second_at - first_at >= 2.0


def test_a_hanging_receiver_does_not_delay_other_channels(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    # The stuck receiver holds its first request until the test releases it, and its timeout is
    # far away: every message of the healthy channel must be delivered while it still hangs.
    stuck = receiver(first(1, HANG))
    fine = receiver()
    outbox = MemoryOutbox()
    stuck_row = enqueue(outbox, "stuck", b"{}")
    fine_rows = [enqueue(outbox, "fine", b"{}") for _ in range(3)]
    targets = {
        "stuck": WebhookTarget("stuck", stuck.url, SECRET, timeout=60.0),
        "fine": WebhookTarget("fine", fine.url, SECRET),
    }
    d = Dispatcher(outbox, targets, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: len(stuck.received()) == 1, timeout=10, what="the stuck request")
    wait_for(
        lambda: all(outbox.get(r).state == "delivered" for r in fine_rows),
        timeout=10,
        what="the healthy channel",
    )
    assert len(fine.received()) == 3
    # Not held up by the hanging one: its first attempt has not even ended yet.
    assert outbox.get(stuck_row).state == "pending" and outbox.get(stuck_row).attempts == 0
    assert all(a[0].channel == "fine" for a in outbox.attempts)
    stuck.release.set()
    wait_for(lambda: outbox.get(stuck_row).state == "delivered", timeout=10, what="the retry")


def test_a_hanging_receiver_times_out_and_is_retried(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    stuck = receiver(first(1, HANG))
    outbox = MemoryOutbox()
    stuck_row = enqueue(outbox, "stuck", b"{}")
    targets = {"stuck": WebhookTarget("stuck", stuck.url, SECRET, timeout=1.5)}
    d = Dispatcher(outbox, targets, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: outbox.get(stuck_row).state == "delivered", timeout=20, what="after timeout")
    first_try = next(a for a in outbox.attempts if a[0].channel == "stuck")
    assert first_try[1].error == "timed out after 1.5 s"
    assert len(stuck.received()) == 2


def test_connection_closed_is_retried_and_4xx_is_terminal(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    flaky = receiver(first(1, CLOSE))
    gone = receiver(always(Reply(404, body=b"no such hook")))
    outbox = MemoryOutbox()
    a = enqueue(outbox, "flaky", b"{}")
    b1 = enqueue(outbox, "gone", b"{}")
    b2 = enqueue(outbox, "gone", b"{}")
    targets = {
        "flaky": WebhookTarget("flaky", flaky.url, None),
        "gone": WebhookTarget("gone", gone.url, None),
    }
    d = Dispatcher(outbox, targets, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(
        lambda: outbox.get(a).state == "delivered" and outbox.get(b2).state == "failed",
        timeout=10,
        what="delivery and failure",
    )
    assert outbox.get(b1).state == "failed" and outbox.get(b1).attempts == 1
    assert outbox.get(b1).last_error == "HTTP error 404: no such hook"
    assert len(gone.received()) == 2  # terminal: each message tried once, the next one not blocked


def test_expired_messages_are_given_up(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    down = receiver(always(Reply(503)))
    outbox = MemoryOutbox()
    clock = ManualClock()
    row = enqueue(outbox, "down", b"{}", now=clock())
    policy = RetryPolicy(base=0.05, cap=0.1, max_age=0.3)
    target = WebhookTarget("down", down.url)
    d = Dispatcher(outbox, {"down": target}, policy=policy, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    d.start()
    clock.run_until(lambda: outbox.get(row).state == "failed", what="giving up")
    assert (outbox.get(row).last_error or "").startswith("expired after")


def test_urls_and_secrets_never_reach_the_logs(
    receiver: Callable[..., Receiver],
    dispatchers: list[Dispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_path = "/services/T000/B000/SECRETxyz"
    hook = receiver(first(1, Reply(500, body=b"oops")))
    gone = receiver()
    gone_url = gone.url + secret_path
    gone.stop()
    outbox = MemoryOutbox()
    clock = ManualClock()
    rows = [
        enqueue(outbox, "slack", b"{}", now=clock()),
        enqueue(outbox, "dead", b"{}", now=clock()),
    ]
    targets = {
        "slack": SlackTarget("slack", hook.url + secret_path, min_interval=0.0),
        "dead": WebhookTarget("dead", gone_url, SECRET),
    }
    policy = RetryPolicy(base=0.05, cap=0.1, max_age=0.5)
    d = Dispatcher(outbox, targets, policy=policy, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    with caplog.at_level(logging.DEBUG):
        d.start()
        clock.run_until(
            lambda: (
                outbox.get(rows[0]).state == "delivered" and outbox.get(rows[1]).state == "failed"
            ),
            what="both outcomes",
        )
        d.stop()
    text = caplog.text + repr(targets) + repr([outbox.get(r) for r in rows])
    assert "notification attempt failed" in caplog.text
    for secret in ("SECRETxyz", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", hook.url, gone_url):
        assert secret not in text


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


#: Bytes a trickling server sends, one every 0.2 s (20 s in all): far past any attempt's deadline.
TRICKLE = 100


def _trickle(status: int, finished: threading.Event) -> Handler:
    """Answer ``status`` and trickle the body; set ``finished`` only if all of it was sent."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Length: {2 * TRICKLE}\r\n\r\n".encode())
        with suppress(OSError):
            for _ in range(TRICKLE):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.2)
            finished.set()

    return answer


def _trickle_headers(finished: threading.Event) -> Handler:
    """Trickle header lines that never end; set ``finished`` only if all of them were sent."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        with suppress(OSError):
            for i in range(TRICKLE):
                h.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
                h.wfile.flush()
                time.sleep(0.2)
            finished.set()

    return answer


def test_a_broken_body_after_a_503_is_retried(raw_server: Callable[[Handler], str]) -> None:
    with requests.Session() as s:
        r = send_once(s, Outgoing(raw_server(_broken_chunked_503) + "/hook", b"{}"), timeout=3)
    assert (r.outcome, r.status) == ("retry", 503)


@pytest.mark.parametrize("status", [200, 503])
def test_a_trickled_body_does_not_hold_the_attempt_past_its_timeout(
    raw_server: Callable[[Handler], str], status: int
) -> None:
    # Each byte comes within 0.2 s, so only a deadline on the whole attempt ends it early.
    finished = threading.Event()
    with requests.Session() as s:
        r = send_once(s, Outgoing(raw_server(_trickle(status, finished)), b"{}"), timeout=1.0)
        assert not finished.is_set()  # the attempt ended while the server was still sending
    assert r.status == status and r.outcome == ("ok" if status == 200 else "retry")


def test_trickled_headers_time_out_at_the_deadline(raw_server: Callable[[Handler], str]) -> None:
    finished = threading.Event()
    with new_session() as s:
        r = send_once(s, Outgoing(raw_server(_trickle_headers(finished)), b"{}"), timeout=1.0)
        assert not finished.is_set()  # the attempt ended while the headers were still coming
    assert (r.outcome, r.error) == ("retry", "timed out after 1 s")


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
    d = Dispatcher(store.outbox, targets, policy=FAST)
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


def test_retarget_starts_stops_and_restarts_channel_workers(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    hook = receiver()
    outbox = MemoryOutbox()

    def target(name: str) -> WebhookTarget:
        return WebhookTarget(name, f"{hook.url}/{name}", SECRET)

    def workers() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("notify-")}

    d = Dispatcher(outbox, {"a": target("a")}, policy=FAST, idle_seconds=None)
    dispatchers.append(d)
    d.start()
    d.retarget({"a": target("a"), "b": target("b")})  # a reload adds a channel
    row = enqueue(outbox, "b", b"{}", "firing")
    d.wake("b")
    wait_for(lambda: outbox.get(row).state == "delivered", what="delivery on the added channel")
    assert [r.path for r in hook.received()] == ["/b"]
    d.retarget({"b": target("b")})  # a reload removes one: its worker ends
    wait_for(lambda: "notify-a" not in workers(), what="the removed channel's worker to end")
    assert "notify-b" in workers()
    d.retarget({"a": target("a"), "b": target("b")})  # and adds it back
    row = enqueue(outbox, "a", b"{}", "resolved")
    d.wake("a")
    wait_for(lambda: outbox.get(row).state == "delivered", what="delivery on the re-added one")
    assert [r.path for r in hook.received()] == ["/b", "/a"]
