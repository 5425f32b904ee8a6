"""``slack``: a Slack incoming webhook, sent the Block Kit message of ``notify.slack``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from recallwatch.config import SlackChannel
from recallwatch.notify.channels.base import JSON, USER_AGENT, ChannelKind, register, secret_of
from recallwatch.notify.delivery import Target
from recallwatch.notify.http import Outgoing
from recallwatch.notify.slack import slack_message
from recallwatch.records.alert import Alert, Event
from recallwatch.records.outbox import OutboxMessage

__all__ = ["SLACK_MIN_INTERVAL", "Slack", "SlackTarget"]

#: Slack's incoming webhooks accept about one message per second per webhook.
SLACK_MIN_INTERVAL = 1.0


@dataclass(frozen=True)
class SlackTarget:
    """A Slack incoming webhook (its URL is the secret)."""

    name: str
    url: str = field(repr=False)
    timeout: float = 10.0
    min_interval: float = SLACK_MIN_INTERVAL

    def request(self, message: OutboxMessage, now: float) -> Outgoing:
        """POST the stored Block Kit payload."""
        headers = {"Content-Type": JSON, "User-Agent": USER_AGENT}
        return Outgoing(self.url, message.body, headers)


@register
class Slack(ChannelKind[SlackChannel]):
    """Block Kit messages to an incoming webhook, at most one a second."""

    type = "slack"

    def render(
        self,
        channel: SlackChannel,
        alert: Alert,
        event: Event,
        now: float,
        *,
        resend_interval: float,
    ) -> bytes:
        """The Block Kit payload of the alert (the same for every event)."""
        return json.dumps(slack_message(alert), ensure_ascii=False).encode()

    def target(self, channel: SlackChannel) -> Target:
        """The webhook at the configured (secret) URL."""
        url = secret_of(channel, "webhook_url")
        assert url is not None  # required by the config model
        return SlackTarget(channel.name, url, channel.timeout_seconds)
