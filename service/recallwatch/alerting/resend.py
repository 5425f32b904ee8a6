"""Alertmanager re-sends: keep firing alerts alive in Alertmanager.

Alertmanager resolves an alert by itself once its ``endsAt`` passes, and it repeats notifications
on its own schedule, so an Alertmanager channel gets no ``repeat`` messages: instead every firing
alert is re-sent to it each ``resend_interval_seconds`` (outbox event ``refresh``), with an
``endsAt`` a few intervals ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from recallwatch.alerting.rules.base import RuleConfig
from recallwatch.notify.channels import ChannelConfig, refresh_interval, render
from recallwatch.records.alert import message_id
from recallwatch.store import AlertRecord, NewMessage

__all__ = ["AlertmanagerResends", "resend_interval"]


def resend_interval(channel: ChannelConfig) -> float:
    """How often a firing alert is re-sent to ``channel`` (only Alertmanager bodies use it)."""
    interval = refresh_interval(channel)
    return 60.0 if interval is None else interval  # unused but by Alertmanager bodies (endsAt)


class AlertmanagerResends:
    """Which firing alerts are due for a re-send to which Alertmanager channel, and their bodies."""

    def __init__(
        self,
        channels: Mapping[str, ChannelConfig],
        rules: Mapping[str, RuleConfig],
        started_at: float,
    ) -> None:
        self._channels = channels
        self._rules = rules
        self._started_at = started_at
        #: channel name -> when its alerts were last re-sent (this process).
        self._last_resend: dict[str, float] = {}

    def keep_schedule(self, previous: AlertmanagerResends) -> None:
        """Carry ``previous``'s last re-send times over for the channels both configure."""
        self._last_resend.update(
            (name, at) for name, at in previous._last_resend.items() if name in self._channels
        )

    def due(self, now: float, open_alerts: Callable[[], Sequence[AlertRecord]]) -> list[NewMessage]:
        """The re-sends due at ``now`` (one per firing alert and due channel); marks them sent."""
        due = {
            name: channel
            for name, channel in self._channels.items()
            if refresh_interval(channel) is not None
            and now - self._last_resend.get(name, self._started_at) >= resend_interval(channel)
        }
        if not due:
            return []
        messages = []
        for record in open_alerts():
            rule = self._rules.get(record.rule)
            for name in rule.channels if rule is not None else []:
                channel = due.get(name)
                if channel is None or now - record.opened_at < resend_interval(channel):
                    continue
                messages.append(
                    NewMessage(
                        message_id=message_id(record.alert.id, "repeat", -int(now)),
                        alert_id=record.alert.id,
                        channel=name,
                        rule=record.rule,
                        event="refresh",
                        body=render(
                            channel,
                            record.alert,
                            "repeat",
                            now,
                            resend_interval=resend_interval(channel),
                        ),
                        created_at=now,
                    )
                )
        self._last_resend.update(dict.fromkeys(due, now))
        return messages
