"""Slack messages: the evidence they carry, Slack's limits, and one message a second."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from recallwatch.notify.channels import SlackTarget
from recallwatch.notify.delivery import Dispatcher
from recallwatch.notify.outbox import MemoryOutbox
from recallwatch.notify.slack import MAX_BLOCKS, MAX_SECTION_TEXT, check_limits, slack_message
from tests.helpers.alerts import regression_alert
from tests.helpers.clock import ManualClock
from tests.helpers.notify import enqueue
from tests.helpers.receivers import Receiver


def test_slack_rate_limit_spaces_messages_by_a_second(
    receiver: Callable[..., Receiver], dispatchers: list[Dispatcher]
) -> None:
    slack = receiver()
    outbox = MemoryOutbox()
    body = json.dumps(slack_message(regression_alert())).encode()
    clock = ManualClock()
    rows = [enqueue(outbox, "slack", body, now=clock()) for _ in range(3)]
    target = SlackTarget("slack", slack.url + "/services/T/B/X")
    d = Dispatcher(outbox, {"slack": target}, clock=clock, wait=clock.wait)
    dispatchers.append(d)
    d.start()
    clock.run_until(lambda: all(outbox.get(r).state == "delivered" for r in rows), what="slack")
    assert len(slack.received()) == 3
    times = [at for _, _, at in outbox.attempts]
    assert clock.waits[:2] == [1.0, 1.0]  # the rate limit, scheduled between the three
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    assert json.loads(slack.received()[0].body)["blocks"]


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
