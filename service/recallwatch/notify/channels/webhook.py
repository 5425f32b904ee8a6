"""``webhook``: a generic JSON webhook (``notify.webhook``), signed per Standard Webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from recallwatch.config import WebhookChannel
from recallwatch.notify.channels.base import JSON, USER_AGENT, ChannelKind, register, secret_of
from recallwatch.notify.delivery import Target
from recallwatch.notify.http import Outgoing
from recallwatch.notify.webhook import signature_headers, webhook_body
from recallwatch.records.alert import Alert, Event
from recallwatch.records.outbox import OutboxMessage

__all__ = ["Webhook", "WebhookTarget"]


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


@register
class Webhook(ChannelKind[WebhookChannel]):
    """The alert as JSON, to the configured (secret) URL."""

    type = "webhook"

    def render(
        self,
        channel: WebhookChannel,
        alert: Alert,
        event: Event,
        now: float,
        *,
        resend_interval: float,
    ) -> bytes:
        """The webhook body of the event, decided at ``now``."""
        return webhook_body(alert, event, now)

    def target(self, channel: WebhookChannel) -> Target:
        """The webhook, with its signing secret when one is configured."""
        url = secret_of(channel, "url")
        assert url is not None  # required by the config model
        return WebhookTarget(
            channel.name, url, secret_of(channel, "secret"), channel.timeout_seconds
        )
