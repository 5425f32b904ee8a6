"""What each channel's message looks like: Slack limits, the webhook schema, Alertmanager labels."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from recallwatch.alerting.model import (
    Alert,
    OpenEpisode,
    message_id,
    recommendation_text,
    transition,
)
from recallwatch.notify.alertmanager import alertmanager_body, alertmanager_labels
from recallwatch.notify.slack import MAX_BLOCKS, MAX_SECTION_TEXT, check_limits, slack_message
from recallwatch.notify.webhook import (
    WebhookVerificationError,
    secret_key,
    sign,
    signature_headers,
    verify,
    webhook_body,
)
from tests.alerting.samples import T0, regression_alert

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_slack_message_carries_the_evidence() -> None:
    payload = slack_message(regression_alert())
    assert check_limits(payload) == []
    text = json.dumps(payload)
    for needle in (
        "range_min",
        "0.7200",
        "0.6700",
        "p = 0.0001",
        "37 queries lost",
        "checkpoint-1000",
        "12.0%",
        "range_min=10: projected FN rate 3.8%",
        "after a mining change",
    ):
        assert needle in text, needle
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in text and "<b>" not in text  # untrusted text escaped
    assert payload["text"].startswith("[critical] recall@10 fell")


def test_slack_message_with_200_lost_queries_and_a_huge_diff_stays_within_limits() -> None:
    alert = regression_alert(lost=200, mining_keys=400, text_length=2_000)
    payload = slack_message(alert)
    assert check_limits(payload) == []
    assert len(payload["blocks"]) <= MAX_BLOCKS
    sections = [b["text"]["text"] for b in payload["blocks"] if "text" in b]
    assert max(len(s) for s in sections) <= MAX_SECTION_TEXT
    mining = next(s for s in sections if s.startswith("*Mining change*"))
    assert "(400 keys)" in mining and "more keys (truncated; the full evidence is in the API)" in (
        mining
    )
    lost = next(s for s in sections if s.startswith("*Lost queries*"))
    assert "200 queries lost" in lost
    assert "truncated" in lost  # 2,000-character query texts are cut, and it says so


def test_resolved_slack_message() -> None:
    payload = slack_message(regression_alert(status="resolved"))
    assert payload["blocks"][0]["text"]["text"].startswith("Resolved: ")
    assert payload["text"].startswith("[critical] RESOLVED: recall@10 fell")
    assert check_limits(payload) == []


def test_check_limits_reports_breaches() -> None:
    bad = {
        "text": "",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}] * 51,
    }
    problems = check_limits(bad)
    assert "no plain-text fallback" in problems and "51 blocks > 50" in problems
    assert any("section text of 3001" in p for p in problems)


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


@pytest.mark.parametrize(
    ("open_", "firing", "now", "repeat", "expected"),
    [
        (None, False, 100.0, 60.0, "none"),
        (None, True, 100.0, 60.0, "fire"),
        (OpenEpisode("a", 0.0, 50.0), True, 100.0, 60.0, "none"),
        (OpenEpisode("a", 0.0, 40.0), True, 100.0, 60.0, "repeat"),
        (OpenEpisode("a", 0.0, 40.0), True, 100.0, None, "none"),
        (OpenEpisode("a", 0.0, 99.0), False, 100.0, 60.0, "resolve"),
    ],
)
def test_transition(
    open_: OpenEpisode | None, firing: bool, now: float, repeat: float | None, expected: str
) -> None:
    assert transition(open_, firing, now, repeat) == expected


def test_ids_are_stable() -> None:
    assert message_id("al_1", "firing") == message_id("al_1", "firing")
    assert message_id("al_1", "firing") != message_id("al_1", "resolved")
    assert message_id("al_1", "repeat", 1) != message_id("al_1", "repeat", 2)


def test_recommendation_text() -> None:
    rec = {
        "target": 0.05,
        "needed": True,
        "best": {
            "describe": "range_min=10",
            "dropped_fraction": 0.21,
            "projected": {"estimate": 0.038},
        },
        "options": [
            {
                "describe": "range_min=10",
                "dropped_fraction": 0.21,
                "projected": {"estimate": 0.038},
            },
            {
                "describe": "relative_margin=0.05",
                "dropped_fraction": 0.24,
                "projected": {"estimate": 0.041},
            },
        ],
    }
    assert recommendation_text(rec) == (
        "set range_min=10: projected FN rate 3.8%, drops 21% of negatives "
        "(or relative_margin=0.05: projected FN rate 4.1%, drops 24% of negatives)"
    )
    assert recommendation_text({"needed": False, "target": 0.05}) == (
        "no filter needed: the mined set is within the false-negative target (5%)"
    )
    assert recommendation_text(None) is None
