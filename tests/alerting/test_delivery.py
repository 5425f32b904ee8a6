"""Delivery against real HTTP receivers on loopback that fail on purpose (must-show 3)."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from recallwatch.alerting.model import message_id
from recallwatch.notify.channels import AlertmanagerTarget, SlackTarget, WebhookTarget, render
from recallwatch.notify.delivery import (
    AttemptResult,
    Dispatcher,
    MemoryOutbox,
    Outgoing,
    RetryPolicy,
    backoff_delay,
    classify_status,
    parse_retry_after,
    send_once,
)
from recallwatch.notify.slack import slack_message
from recallwatch.notify.webhook import verify, webhook_body
from tests.alerting.receivers import CLOSE, HANG, OK, Receiver, Reply, always, first
from tests.alerting.samples import regression_alert
from tests.daemon.helpers import wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = RetryPolicy(base=0.05, factor=2.0, cap=0.4, jitter=0.5)


# -- pure arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "ok"),
        (204, "ok"),
        (301, "terminal"),
        (400, "terminal"),
        (401, "terminal"),
        (404, "terminal"),
        (408, "retry"),
        (410, "terminal"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_classify_status(status: int, expected: str) -> None:
    assert classify_status(status) == expected


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, cap=60.0, jitter=0.5)
    low = [backoff_delay(n, policy, lambda: 0.0) for n in range(1, 9)]
    high = [backoff_delay(n, policy, lambda: 0.999999) for n in range(1, 9)]
    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert high == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0], rel=1e-5)
    assert backoff_delay(10_000, policy, lambda: 0.5) == 45.0  # no overflow at huge attempts
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-3", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == expected


# -- one attempt against real receivers -----------------------------------------------------------


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


# -- the dispatcher -------------------------------------------------------------------------------


def enqueue(outbox: MemoryOutbox, channel: str, body: bytes, event: str = "firing") -> int:
    alert = regression_alert()
    msg = outbox.add(
        message_id=message_id(alert.id, event),  # type: ignore[arg-type]
        alert_id=alert.id,
        channel=channel,
        rule=alert.key.rule,
        event=event,
        body=body,
        now=time.time(),
    )
    return msg.id


@pytest.fixture
def dispatchers() -> Iterator[list[Dispatcher]]:
    made: list[Dispatcher] = []
    yield made
    for d in made:
        d.stop()


def test_500_then_200_delivers_once_with_the_same_webhook_id(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    hook = receiver(first(3, Reply(500, body=b"down")))
    outbox = MemoryOutbox()
    alert = regression_alert()
    body = webhook_body(alert, "firing", time.time())
    row = enqueue(outbox, "hook", body)
    d = Dispatcher(outbox, {"hook": WebhookTarget("hook", hook.url + "/in", SECRET)}, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: outbox.get(row).state == "delivered", timeout=10, what="delivery")
    got = hook.received()
    assert len(got) == 4  # three 500s, then delivered once and never again
    ids = {r.headers["webhook-id"] for r in got}
    assert ids == {message_id(alert.id, "firing")}
    for r in got:  # every attempt is signed (with its own timestamp), verifies, same bytes
        assert verify(SECRET, r.headers, r.body, now=time.time()) == message_id(alert.id, "firing")
        assert r.body == body
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(g >= 0.025 for g in gaps)  # backed off (base 0.05 s, jitter down to half)
    assert outbox.get(row).attempts == 4
    time.sleep(0.3)  # nothing more arrives after delivery
    assert len(hook.received()) == 4


def test_429_retry_after_is_honoured(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    hook = receiver(first(1, Reply(429, {"Retry-After": "2"}, b"slow down")))
    outbox = MemoryOutbox()
    row = enqueue(outbox, "hook", b"{}")
    d = Dispatcher(outbox, {"hook": WebhookTarget("hook", hook.url, SECRET)}, policy=FAST)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: outbox.get(row).state == "delivered", timeout=10, what="delivery")
    first_at, second_at = (r.at for r in hook.received())
    assert second_at - first_at >= 2.0


def test_a_hanging_receiver_times_out_without_delaying_other_channels(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    stuck = receiver(first(1, HANG))
    fine = receiver()
    outbox = MemoryOutbox()
    stuck_row = enqueue(outbox, "stuck", b"{}")
    fine_rows = [enqueue(outbox, "fine", b"{}") for _ in range(3)]
    targets = {
        "stuck": WebhookTarget("stuck", stuck.url, SECRET, timeout=1.5),
        "fine": WebhookTarget("fine", fine.url, SECRET),
    }
    d = Dispatcher(outbox, targets, policy=FAST)
    dispatchers.append(d)
    t0 = time.monotonic()
    d.start()
    wait_for(
        lambda: all(outbox.get(r).state == "delivered" for r in fine_rows),
        timeout=5,
        what="the healthy channel",
    )
    assert time.monotonic() - t0 < 1.0  # not held up by the hanging one
    wait_for(lambda: outbox.get(stuck_row).state == "delivered", timeout=10, what="after timeout")
    first_try = next(a for a in outbox.attempts if a[0].channel == "stuck")
    assert first_try[1].error == "timed out after 1.5 s"


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


def test_slack_rate_limit_spaces_messages_by_a_second(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    slack = receiver()
    outbox = MemoryOutbox()
    body = json.dumps(slack_message(regression_alert())).encode()
    rows = [enqueue(outbox, "slack", body) for _ in range(3)]
    d = Dispatcher(outbox, {"slack": SlackTarget("slack", slack.url + "/services/T/B/X")})
    dispatchers.append(d)
    d.start()
    wait_for(
        lambda: all(outbox.get(r).state == "delivered" for r in rows), timeout=10, what="slack"
    )
    times = [r.at for r in slack.received()]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    assert json.loads(slack.received()[0].body)["blocks"]


def test_expired_messages_are_given_up(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    down = receiver(always(Reply(503)))
    outbox = MemoryOutbox()
    row = enqueue(outbox, "down", b"{}")
    policy = RetryPolicy(base=0.05, cap=0.1, max_age=0.3)
    d = Dispatcher(outbox, {"down": WebhookTarget("down", down.url)}, policy=policy)
    dispatchers.append(d)
    d.start()
    wait_for(lambda: outbox.get(row).state == "failed", timeout=10, what="giving up")
    assert (outbox.get(row).last_error or "").startswith("expired after")


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
    rows = [enqueue(outbox, "slack", b"{}"), enqueue(outbox, "dead", b"{}")]
    targets = {
        "slack": SlackTarget("slack", hook.url + secret_path, min_interval=0.0),
        "dead": WebhookTarget("dead", gone_url, SECRET),
    }
    d = Dispatcher(outbox, targets, policy=RetryPolicy(base=0.05, cap=0.1, max_age=0.5))
    dispatchers.append(d)
    with caplog.at_level(logging.DEBUG):
        d.start()
        wait_for(
            lambda: (
                outbox.get(rows[0]).state == "delivered" and outbox.get(rows[1]).state == "failed"
            ),
            timeout=10,
            what="both outcomes",
        )
        d.stop()
    text = caplog.text + repr(targets) + repr([outbox.get(r) for r in rows])
    assert "notification attempt failed" in caplog.text
    for secret in ("SECRETxyz", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", hook.url, gone_url):
        assert secret not in text


def test_render_per_channel_type() -> None:
    from recallwatch.config import AlertmanagerChannel

    am = AlertmanagerChannel(type="alertmanager", name="am", url="http://127.0.0.1:9093")
    body = json.loads(render(am, regression_alert(), "firing", time.time()))
    assert body[0]["labels"]["alertname"] == "RecallRegressionAfterMiningChange"
