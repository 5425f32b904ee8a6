"""Pure retry arithmetic of a channel: backoff with jitter, ``Retry-After``, status classes.

The random source and the clock are injected; nothing here does I/O. The HTTP judge of the
false-negative audit uses the same ``parse_retry_after``.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Random = Callable[[], float]
#: What an attempt's result means for its message: delivered, try again later, or give up.
Outcome = Literal["ok", "retry", "terminal"]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff and give-up settings of a channel."""

    #: First retry delay (seconds) before jitter; doubles (``factor``) per attempt up to ``cap``.
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    #: Fraction of the delay that is random: delay x (1 - jitter + jitter x U[0, 1)).
    jitter: float = 0.5
    #: The longest ``Retry-After`` honoured as given (longer ones are cut to this).
    max_retry_after: float = 3600.0
    #: Give a message up when it is still undelivered this long after it was decided.
    max_age: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")


#: The default policy (a module-level instance, so it can be a default argument).
DEFAULT_POLICY = RetryPolicy()


def backoff_delay(attempts: int, policy: RetryPolicy, rng: Random) -> float:
    """The delay after the ``attempts``-th failed attempt (1-based): capped exponential + jitter."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    exponent = min(attempts - 1, 64)  # beyond this the cap rules anyway; avoids float overflow
    delay = min(policy.cap, policy.base * policy.factor**exponent)
    return delay * (1.0 - policy.jitter + policy.jitter * rng())


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), if valid."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def classify_status(status: int) -> Outcome:
    """Delivered, retryable or terminal, by HTTP status."""
    if 200 <= status < 300:
        return "ok"
    if status in (408, 429) or 500 <= status < 600:
        return "retry"
    return "terminal"
