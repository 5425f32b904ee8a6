"""Standard Webhooks: signatures, verification, the reference library, secrets, the body schema."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import requests
from pydantic import ValidationError

from recallwatch.config import WebhookChannel
from recallwatch.notify.channels import (
    WebhookTarget,
)
from recallwatch.notify.http import send_once
from recallwatch.notify.outbox import MemoryOutbox
from recallwatch.notify.webhook import (
    WebhookVerificationError,
    secret_key,
    sign,
    signature_headers,
    verify,
    webhook_body,
)
from recallwatch.records.alert import Alert
from tests.helpers.alerts import T0, regression_alert
from tests.helpers.notify import SECRET
from tests.helpers.receivers import Receiver

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


def test_standard_webhooks_test_vector() -> None:
    # The specification's published example.
    sig = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_good_and_rejects_bad_deliveries() -> None:
    body = webhook_body(regression_alert(), "firing", T0)
    headers = signature_headers(SECRET, "msg_1", int(T0), body)
    assert verify(SECRET, headers, body, now=T0 + 10) == "msg_1"
    upper = {k.title(): v for k, v in headers.items()}  # header names are case-insensitive
    assert verify(SECRET, upper, body, now=T0) == "msg_1"
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert verify(SECRET, rotated, body, now=T0) == "msg_1"
    cases = [
        (SECRET, headers, body + b" ", T0, "no matching"),
        ("whsec_" + "QUJD", headers, body, T0, "no matching"),
        (SECRET, headers, body, T0 + 301, "tolerance"),
        (SECRET, headers, body, T0 - 301, "tolerance"),
        (SECRET, {k: v for k, v in headers.items() if k != "webhook-id"}, body, T0, "missing"),
        (SECRET, {**headers, "webhook-timestamp": "soon"}, body, T0, "not an integer"),
        (SECRET, {**headers, "webhook-signature": "v2,abc"}, body, T0, "no matching"),
    ]
    for secret, h, b, now, match in cases:
        with pytest.raises(WebhookVerificationError, match=match):
            verify(secret, h, b, now=now)


def test_the_reference_library_agrees_both_ways() -> None:
    # standardwebhooks is the specification's own Python library.
    sw = pytest.importorskip("standardwebhooks")
    body = webhook_body(regression_alert(), "firing", T0)
    now = int(time.time())
    headers = signature_headers(SECRET, "msg_ref", now, body)
    parsed = sw.Webhook(SECRET).verify(body, headers)
    assert parsed["data"]["id"] == regression_alert().id
    theirs = sw.Webhook(SECRET).sign("msg_ref", datetime.fromtimestamp(now, UTC), body.decode())
    assert theirs == headers["webhook-signature"]
    ok = verify(SECRET, {**headers, "webhook-signature": theirs}, body, now=now)
    assert ok == "msg_ref"


def test_secret_conventions() -> None:
    assert secret_key("whsec_QUJD") == b"ABC"
    # Without the prefix the secret is base64 too, as the reference library reads it.
    assert secret_key("QUJD") == b"ABC"
    with pytest.raises(ValueError, match="base64"):
        secret_key("plain-secret")
    with pytest.raises(ValueError, match="base64"):
        secret_key("whsec_not base64!")
    assert "webhook-signature" not in signature_headers(None, "m", 1, b"{}")


def test_webhook_body_schema_v1_round_trips_the_alert() -> None:
    alert = regression_alert()
    doc = json.loads(webhook_body(alert, "firing", T0))
    assert (doc["type"], doc["version"], doc["timestamp"]) == (
        "alert.firing",
        1,
        "2026-09-21T14:13:20.000Z",
    )
    data = doc["data"]
    assert data["key"] == {
        "rule": "recall-after-mining",
        "run": "run-a",
        "dataset": "scifact",
        "k": 10,
        "baseline": "checkpoint-1000",
    }
    assert data["evidence"]["metric"]["before"]["estimate"] == 0.72
    assert data["evidence"]["mining_diff"][0] == {
        "key": "range_min",
        "before": 0,
        "after": 10,
        "change": "changed",
    }
    assert Alert.from_dict(data) == alert
    resolved = json.loads(webhook_body(regression_alert(status="resolved"), "resolved", T0))
    assert resolved["type"] == "alert.resolved" and resolved["data"]["status"] == "resolved"
