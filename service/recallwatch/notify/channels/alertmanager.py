"""``alertmanager``: an Alertmanager's ``/api/v2/alerts`` (bodies of ``notify.alertmanager``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recallwatch.config import AlertmanagerChannel
from recallwatch.notify.alertmanager import (
    DEFAULT_RESEND_SECONDS,
    alertmanager_body,
    with_ends_at,
)
from recallwatch.notify.channels.base import JSON, USER_AGENT, ChannelKind, register, secret_of
from recallwatch.notify.delivery import Target
from recallwatch.notify.http import Outgoing
from recallwatch.records.alert import Alert, Event
from recallwatch.records.outbox import OutboxMessage

__all__ = ["Alertmanager", "AlertmanagerTarget"]


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


@register
class Alertmanager(ChannelKind[AlertmanagerChannel]):
    """Alerts posted to Alertmanager, re-sent while they fire (``alerting.resend``)."""

    type = "alertmanager"

    def render(
        self,
        channel: AlertmanagerChannel,
        alert: Alert,
        event: Event,
        now: float,
        *,
        resend_interval: float,
    ) -> bytes:
        """The alert in Alertmanager's form, ending a few resend intervals after ``now``."""
        return alertmanager_body(alert, now=now, resend_interval=resend_interval)

    def refresh_interval(self, channel: AlertmanagerChannel) -> float | None:
        """Its ``resend_interval_seconds``: Alertmanager resolves alerts whose ``endsAt`` passed."""
        return channel.resend_interval_seconds

    def target(self, channel: AlertmanagerChannel) -> Target:
        """The Alertmanager at the configured URL, with its bearer token when one is set."""
        return AlertmanagerTarget(
            channel.name,
            channel.url,
            secret_of(channel, "bearer_token"),
            channel.timeout_seconds,
            resend_interval=channel.resend_interval_seconds,
        )
