"""An in-memory ``Outbox`` (the protocol is ``recallwatch.records.outbox.Outbox``).

The daemon's outbox is the store's (``recallwatch.store.outbox.SqliteOutbox``); ``MemoryOutbox``
serves ``notify-test`` and tests.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from recallwatch.records.outbox import AttemptResult, MessageState, OutboxMessage


class MemoryOutbox:
    """An in-memory ``Outbox`` (notify-test, tests); ``attempts`` keeps every result in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, OutboxMessage] = {}
        self.attempts: list[tuple[OutboxMessage, AttemptResult, float]] = []

    def add(
        self,
        *,
        message_id: str,
        alert_id: str,
        channel: str,
        rule: str,
        event: str,
        body: bytes,
        now: float,
    ) -> OutboxMessage:
        """Enqueue a message."""
        with self._lock:
            msg = OutboxMessage(
                len(self._messages) + 1,
                message_id,
                alert_id,
                channel,
                rule,
                event,
                body,
                created_at=now,
                next_attempt_at=now,
            )
            self._messages[msg.id] = msg
            return msg

    def get(self, id: int) -> OutboxMessage:
        """A message by row id."""
        with self._lock:
            return self._messages[id]

    def next_pending(self, channel: str) -> OutboxMessage | None:
        """The oldest pending message of a channel."""
        with self._lock:
            pending = [
                m for m in self._messages.values() if m.channel == channel and m.state == "pending"
            ]
            return min(pending, key=lambda m: m.id) if pending else None

    def record_attempt(
        self,
        message: OutboxMessage,
        result: AttemptResult,
        *,
        now: float,
        state: MessageState,
        next_attempt_at: float,
    ) -> None:
        """Store one attempt's result and the message's new state."""
        with self._lock:
            current = self._messages[message.id]
            self._messages[message.id] = replace(
                current,
                state=state,
                attempts=current.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=result.error,
                last_status=result.status,
                delivered_at=now if state == "delivered" else None,
            )
            self.attempts.append((current, result, now))
