"""Alert episodes: the state machine of one alert key, and what each transition writes.

One key (``AlertKey``) has at most one open episode. ``transition`` is the pure state machine:
given the open episode (if any) and whether the rule fires now, it says whether to **fire** a new
episode, **repeat** the open one (a still-firing alert notified again each repeat interval),
**resolve** it, or do nothing. ``Episodes`` turns a transition into the alert's new state and one
outbox message per channel of its rule (``EpisodeChanges``), which the engine writes in one
transaction; Alertmanager channels get no repeats (they get re-sends, see ``resend``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from recallwatch.alerting.resend import resend_interval
from recallwatch.alerting.rules.base import RuleConfig
from recallwatch.logs import fields
from recallwatch.notify.channels import ChannelConfig, refresh_interval, render
from recallwatch.records.alert import Alert, Event, Resolution, message_id
from recallwatch.store import AlertRecord, AlertWrite, CheckpointRow, NewMessage

__all__ = ["EpisodeChanges", "Episodes", "OpenEpisode", "Transition", "transition"]

log = logging.getLogger(__name__)

Transition = Literal["fire", "repeat", "resolve", "none"]


@dataclass(frozen=True)
class OpenEpisode:
    """An alert episode that is firing: its id, when it opened and was last notified."""

    id: str
    opened_at: float
    last_notified_at: float

    @classmethod
    def of(cls, record: AlertRecord) -> OpenEpisode:
        """The open episode of a stored firing alert."""
        return cls(record.alert.id, record.opened_at, record.last_notified_at)


def transition(
    episode: OpenEpisode | None, firing: bool, now: float, repeat_interval: float | None
) -> Transition:
    """What to do for one key: fire a new episode, repeat the open one, resolve it, or nothing."""
    if episode is None:
        return "fire" if firing else "none"
    if not firing:
        return "resolve"
    if repeat_interval is not None and now - episode.last_notified_at >= repeat_interval:
        return "repeat"
    return "none"


@dataclass
class EpisodeChanges:
    """Alert states and outbox messages to write together, in one transaction."""

    writes: list[AlertWrite] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.writes or self.messages)


class Episodes:
    """Fire, repeat and resolve episodes: their new states and their messages per channel."""

    def __init__(
        self,
        channels: Mapping[str, ChannelConfig],
        rules: Mapping[str, RuleConfig],
        repeat_interval: float | None,
    ) -> None:
        self._channels = channels
        self._rules = rules
        #: A still-firing alert is notified again this often (Alertmanager repeats by itself).
        self.repeat_interval = repeat_interval

    def fire(self, rule: RuleConfig, alert: Alert, now: float, changes: EpisodeChanges) -> None:
        """Open a new episode of ``alert``."""
        changes.writes.append(
            AlertWrite(alert, "firing", opened_at=now, notified_at=now, repeats=0)
        )
        changes.messages += self.messages(rule, alert, "firing", now)
        log.warning(
            "alert firing: %s",
            alert.summary,
            extra=fields(alert=alert.id, rule=rule.name, run=alert.run),
        )

    def repeat(
        self, record: AlertRecord, rule: RuleConfig, now: float, changes: EpisodeChanges
    ) -> None:
        """Notify a firing alert again (not to Alertmanager, which repeats by itself)."""
        seq = record.repeats + 1
        changes.writes.append(
            AlertWrite(
                record.alert, "firing", opened_at=record.opened_at, notified_at=now, repeats=seq
            )
        )
        changes.messages += self.messages(
            rule, record.alert, "repeat", now, sequence=seq, skip_refreshed=True
        )

    def resolve(
        self,
        record: AlertRecord,
        rule: RuleConfig,
        checkpoint: CheckpointRow | None,
        now: float,
        changes: EpisodeChanges,
        *,
        note: str | None = None,
        resolution: Resolution | None = None,
    ) -> None:
        """Resolve an open episode, by ``checkpoint`` when a checkpoint decided it.

        ``resolution`` says what resolved it (the resolved message carries it instead of the
        firing evidence); ``note`` is added to the alert's description. The messages go to the
        channels of the rule that opened the episode (``rule`` when it is no longer configured).
        """
        resolved = record.alert.resolved(
            now,
            checkpoint=checkpoint.name if checkpoint else None,
            step=checkpoint.step if checkpoint else None,
            resolution=resolution,
        )
        if note:
            resolved = replace(resolved, description=f"{resolved.description} ({note})")
        changes.writes.append(
            AlertWrite(
                resolved,
                "resolved",
                opened_at=record.opened_at,
                notified_at=now,
                repeats=record.repeats,
            )
        )
        changes.messages += self.messages(
            self._rules.get(record.rule, rule), resolved, "resolved", now
        )
        log.info(
            "alert resolved: %s",
            record.alert.summary,
            extra=fields(alert=record.alert.id, rule=record.rule, run=record.alert.run),
        )

    def repeats_due(
        self, open_alerts: Callable[[], Sequence[AlertRecord]], now: float
    ) -> EpisodeChanges:
        """Repeats of every alert that kept firing for a repeat interval without a decision."""
        changes = EpisodeChanges()
        if self.repeat_interval is None:
            return changes
        for record in open_alerts():
            rule = self._rules.get(record.rule)
            if rule is not None and now - record.last_notified_at >= self.repeat_interval:
                self.repeat(record, rule, now, changes)
        return changes

    def messages(
        self,
        rule: RuleConfig,
        alert: Alert,
        event: Event,
        now: float,
        *,
        sequence: int = 0,
        skip_refreshed: bool = False,
    ) -> list[NewMessage]:
        """One message about ``alert`` per configured channel of ``rule``, its body rendered."""
        out = []
        for name in rule.channels:
            channel = self._channels.get(name)
            if channel is None:
                continue
            if skip_refreshed and refresh_interval(channel) is not None:
                continue  # re-sent by ``resend`` instead
            out.append(
                NewMessage(
                    message_id=message_id(alert.id, event, sequence),
                    alert_id=alert.id,
                    channel=name,
                    rule=rule.name,
                    event=event,
                    body=render(
                        channel, alert, event, now, resend_interval=resend_interval(channel)
                    ),
                    created_at=now,
                )
            )
        return out
