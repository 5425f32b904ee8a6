"""The records delivery works on: an outbox message and the result of one attempt.

Kept apart from ``delivery`` (which needs ``requests``) so the store can use them cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AttemptResult", "MessageState", "OutboxMessage", "Outcome"]

Outcome = Literal["ok", "retry", "terminal"]
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
