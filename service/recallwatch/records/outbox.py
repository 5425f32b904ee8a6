"""The outbox records: a notification message, the result of one delivery attempt, and the
``Outbox`` protocol of their storage.

Shared by the store (``store.outbox.SqliteOutbox`` implements ``Outbox``) and delivery
(``notify.delivery`` reads and writes through it), so they live below both. An attempt's
``Outcome`` is the retry arithmetic's classification (``recallwatch.retry``, a foundation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from recallwatch.retry import Outcome

__all__ = ["AttemptResult", "MessageState", "Outbox", "OutboxMessage"]

MessageState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt gave: the outcome, the status if any, a safe error text, Retry-After."""

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class OutboxMessage:
    """A notification waiting for (or done with) delivery to one channel."""

    id: int
    message_id: str
    alert_id: str
    channel: str
    rule: str
    event: str
    body: bytes = field(repr=False)
    created_at: float
    state: MessageState = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    last_status: int | None = None
    delivered_at: float | None = None


class Outbox(Protocol):
    """Storage of outbox messages, as the dispatcher needs it.

    Implemented by the store (``recallwatch.store.outbox.SqliteOutbox``, the daemon's
    ``store.outbox``) and in memory by ``recallwatch.notify.outbox.MemoryOutbox``.
    """

    def next_pending(self, channel: str) -> OutboxMessage | None:
        """The oldest pending message of a channel."""

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
