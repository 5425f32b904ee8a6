"""Outbox messages and retry policies for the notification delivery tests."""

from __future__ import annotations

import time

from recallwatch.notify.outbox import MemoryOutbox
from recallwatch.records.alert import message_id
from recallwatch.retry import RetryPolicy
from tests.helpers.alerts import regression_alert

#: A Standard Webhooks secret (``whsec_`` + base64).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Retries in tens of milliseconds, so a test sees several attempts quickly.
FAST = RetryPolicy(base=0.05, factor=2.0, cap=0.4, jitter=0.5)


def enqueue(
    outbox: MemoryOutbox,
    channel: str,
    body: bytes,
    event: str = "firing",
    *,
    now: float | None = None,
) -> int:
    """Add a message of the sample regression alert to ``outbox`` (decided ``now``, by default
    the wall clock's); return its row id."""
    alert = regression_alert()
    msg = outbox.add(
        message_id=message_id(alert.id, event),  # type: ignore[arg-type]
        alert_id=alert.id,
        channel=channel,
        rule=alert.key.rule,
        event=event,
        body=body,
        now=time.time() if now is None else now,
    )
    return msg.id
