"""The configured channels as delivery targets, and what each one's message body is.

A message's body is rendered once, when it is decided (``render``), and stored in the outbox, so
every retry sends the same bytes. What changes per attempt is computed by the target's
``request``: the Standard Webhooks timestamp and signature, the Alertmanager bearer token, and a
firing Alertmanager alert's ``endsAt`` (kept 4 resend intervals ahead of the attempt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from recallwatch.config import AlertmanagerChannel, SlackChannel, WebhookChannel
from recallwatch.notify.alertmanager import (
    DEFAULT_RESEND_SECONDS,
    alertmanager_body,
    with_ends_at,
)
from recallwatch.notify.delivery import Target
from recallwatch.notify.http import Outgoing
from recallwatch.notify.slack import slack_message
from recallwatch.notify.webhook import signature_headers, webhook_body
from recallwatch.records.alert import Alert, Event
from recallwatch.records.outbox import OutboxMessage

__all__ = [
    "AlertmanagerTarget",
    "ChannelConfig",
    "SlackTarget",
    "WebhookTarget",
    "render",
    "target_for",
]

ChannelConfig = SlackChannel | WebhookChannel | AlertmanagerChannel
JSON = "application/json"
USER_AGENT = "recallwatch-notify/1"

#: Slack's incoming webhooks accept about one message per second per webhook.
SLACK_MIN_INTERVAL = 1.0


def render(
    channel: ChannelConfig,
    alert: Alert,
    event: Event,
    now: float,
    *,
    resend_interval: float = DEFAULT_RESEND_SECONDS,
) -> bytes:
    """The body of ``alert``'s ``event`` message for ``channel``."""
    if isinstance(channel, SlackChannel):
        return json.dumps(slack_message(alert), ensure_ascii=False).encode()
    if isinstance(channel, WebhookChannel):
        return webhook_body(alert, event, now)
    return alertmanager_body(alert, now=now, resend_interval=resend_interval)


def _secret(channel: ChannelConfig, name: str) -> str | None:
    value = channel.secret(name)
    return None if value is None else value.get_secret_value()


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


@dataclass(frozen=True)
class WebhookTarget:
    """A generic webhook, signed per Standard Webhooks when a secret is configured."""

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    min_interval: float = 0.0

    def request(self, message: OutboxMessage, now: float) -> Outgoing:
        """POST the stored body with this attempt's timestamp and signature."""
        headers = {"Content-Type": JSON, "User-Agent": USER_AGENT}
        headers.update(signature_headers(self.secret, message.message_id, int(now), message.body))
        return Outgoing(self.url, message.body, headers)


@dataclass(frozen=True)
class AlertmanagerTarget:
    """An Alertmanager's ``/api/v2/alerts``."""

    name: str
    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    min_interval: float = 0.0
    resend_interval: float = DEFAULT_RESEND_SECONDS

    def request(self, message: OutboxMessage, now: float) -> Outgoing:
        """POST the stored alerts (firing ones end 4 resends after ``now``), with the token."""
        headers = {"Content-Type": JSON, "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = message.body
        if message.event != "resolved":  # a resolved alert keeps its resolution time
            body = with_ends_at(body, now=now, resend_interval=self.resend_interval)
        return Outgoing(f"{self.base_url.rstrip('/')}/api/v2/alerts", body, headers)


def target_for(channel: ChannelConfig) -> Target:
    """The delivery target of a configured channel (secrets resolved by the config)."""
    if isinstance(channel, SlackChannel):
        url = _secret(channel, "webhook_url")
        assert url is not None  # required by the config model
        return SlackTarget(channel.name, url, channel.timeout_seconds)
    if isinstance(channel, WebhookChannel):
        url = _secret(channel, "url")
        assert url is not None
        return WebhookTarget(channel.name, url, _secret(channel, "secret"), channel.timeout_seconds)
    return AlertmanagerTarget(
        channel.name,
        channel.url,
        _secret(channel, "bearer_token"),
        channel.timeout_seconds,
        resend_interval=channel.resend_interval_seconds,
    )
