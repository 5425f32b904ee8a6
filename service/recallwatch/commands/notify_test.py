"""``recallwatch notify-test``: send a test message through one configured channel."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from recallwatch.config import Config, load_config
from recallwatch.errors import ConfigError
from recallwatch.notify.channels import render, target_for
from recallwatch.notify.delivery import Dispatcher
from recallwatch.notify.outbox import MemoryOutbox
from recallwatch.records.alert import Alert, AlertKey, alert_id, message_id
from recallwatch.retry import RetryPolicy

__all__ = ["TEST_ALERTNAME", "add_parser", "run", "send_test"]

#: The ``alertname`` of a test message (its runbook section says nothing is wrong).
TEST_ALERTNAME = "RecallwatchTest"

#: How long notify-test keeps retrying (5xx, 429 ...) before it reports failure.
PATIENCE_SECONDS = 30.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``notify-test`` subcommand."""
    p = sub.add_parser(
        "notify-test",
        help="send a test message through a notification channel",
        description="Send a test message through one channel of the config, with the same "
        "rendering, signing, timeout and retries as the daemon. Exit status 0 when the receiver "
        "accepted it, 1 when it did not, 2 on a bad config.",
    )
    p.add_argument("--channel", required=True, help="the channel's name in notifications.channels")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the configuration file (default: $RECALLWATCH_CONFIG, else ./recallwatch.yaml)",
    )
    p.set_defaults(func=run)


def test_alert(now: float) -> Alert:
    """The alert a test message carries (severity info, no evidence)."""
    key = AlertKey(rule="notify-test", run="notify-test")
    return Alert(
        id=alert_id(key, str(now)),
        key=key,
        rule_type="test",
        alertname=TEST_ALERTNAME,
        severity="info",
        status="firing",
        summary="recallwatch test message: this channel works",
        description="Sent by `recallwatch notify-test`; nothing is wrong.",
        run="notify-test",
        checkpoint=None,
        step=None,
        started_at=now,
    )


test_alert.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def send_test(
    config: Config, channel_name: str, *, patience: float = PATIENCE_SECONDS
) -> tuple[bool, str]:
    """Send a test message to one channel: (delivered, what happened)."""
    channel = next((c for c in config.notifications.channels if c.name == channel_name), None)
    if channel is None:
        known = ", ".join(c.name for c in config.notifications.channels) or "none"
        raise ConfigError(
            [("notifications.channels", f"no channel named {channel_name!r} (known: {known})")]
        )
    try:  # only this channel's secrets are needed (the config was loaded without any)
        channel.resolve_secrets()
    except ValueError as exc:
        index = config.notifications.channels.index(channel)
        raise ConfigError([(f"notifications.channels.{index}", str(exc))]) from None
    now = time.time()
    alert = test_alert(now)
    outbox = MemoryOutbox()
    msg = outbox.add(
        message_id=message_id(alert.id, "test"),
        alert_id=alert.id,
        channel=channel.name,
        rule="notify-test",
        event="test",
        body=render(channel, alert, "test", now, resend_interval=75.0),
        now=now,
    )
    # The Alertmanager test alert ends by itself 5 minutes later (4 x 75 s).
    dispatcher = Dispatcher(
        outbox, {channel.name: target_for(channel)}, policy=RetryPolicy(max_age=patience)
    )
    try:
        while outbox.get(msg.id).state == "pending":
            wait = dispatcher.step(channel.name)
            if wait is not None and wait > 0:
                time.sleep(min(wait, patience))
    finally:
        dispatcher.stop()
    done = outbox.get(msg.id)
    tries = f"{done.attempts} attempt{'s' if done.attempts != 1 else ''}"
    if done.state == "delivered":
        return (
            True,
            f"delivered to {channel.name} ({channel.type}) in {tries}, HTTP {done.last_status}",
        )
    return (
        False,
        f"not delivered to {channel.name} ({channel.type}) after {tries}: {done.last_error}",
    )


def run(args: argparse.Namespace) -> int:
    """Send the test message and print the outcome."""
    path = args.config or Path(os.environ.get("RECALLWATCH_CONFIG", "recallwatch.yaml"))
    ok, text = send_test(load_config(path, secrets=False), args.channel)
    print(text)
    return 0 if ok else 1
