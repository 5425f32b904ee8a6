"""Delivery: send outbox messages to their channels, with retries, backoff and rate limits.

Semantics (``docs/alerting.md``, "Delivery"):

- A message is written to the outbox before any attempt, so it survives a crash: **at least
  once**. Receivers deduplicate on the message id (``webhook-id`` for webhooks).
- Each channel has its own worker thread and HTTP session, so a hanging receiver delays only its
  own channel. Within a channel messages go oldest first (a resolve never overtakes its firing).
- An attempt is one ``POST`` that does not follow redirects, bounded as a whole by its timeout
  (default 10 s): a watchdog shuts the connection down at the deadline, so a receiver that
  trickles its answer cannot hold the channel; at most ``BODY_LIMIT`` bytes of a body are read.
  Classification: 2xx delivered; 429 and 503 retried after ``Retry-After`` when given; 408, other
  5xx, timeouts, connection errors and answers that break after the request was sent (a cut-off
  or undecodable body) retried with exponential backoff and jitter; any other status (other 4xx,
  3xx) and a request that cannot be made (a malformed URL) are terminal and surfaced. A message
  still undelivered ``max_age`` seconds after it was decided is given up (terminal, ``expired``).
- Per-channel rate limit: at least ``min_interval`` seconds between attempts (Slack: 1 s).
- Neither URLs nor secrets are ever logged or stored in errors: errors are fixed phrases plus the
  status code and a short, sanitised piece of the response body, from which the target URL's
  path, query and userinfo are scrubbed (a 404 page may echo them).

The retry arithmetic (``classify_status``, ``parse_retry_after``, ``backoff_delay``) is pure, with
the random source injected, and tested on its own.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import requests

from recallwatch.logs import fields
from recallwatch.notify.http import Outgoing, new_session, send_once, silence_url_logging
from recallwatch.records.outbox import AttemptResult, MessageState, Outbox, OutboxMessage
from recallwatch.retry import DEFAULT_POLICY, RetryPolicy, backoff_delay

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Random = Callable[[], float]
#: How a worker waits for its next step: until the event is set or ``timeout`` seconds of the
#: dispatcher's clock pass. Real time by default (``threading.Event.wait``); tests inject one that
#: follows their clock, so they drive retries and rate limits without sleeping.
Wait = Callable[[threading.Event, float], object]


# -- channels and the dispatcher ------------------------------------------------------------------


class Target(Protocol):
    """A delivery channel: its limits, and how a stored message becomes an HTTP request."""

    @property
    def name(self) -> str:
        """The channel's configured name."""

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take."""

    @property
    def min_interval(self) -> float:
        """Minimum seconds between two attempts on this channel (the rate limit)."""

    def request(self, message: OutboxMessage, now: float) -> Outgoing:
        """The HTTP request of one attempt to deliver ``message`` at ``now``."""


class Dispatcher:
    """Deliver outbox messages, one worker thread and HTTP session per channel."""

    def __init__(
        self,
        outbox: Outbox,
        targets: Mapping[str, Target],
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        session_factory: Callable[[], requests.Session] = new_session,
        clock: Clock = time.time,
        wait: Wait = threading.Event.wait,
        rng: Random = random.random,
        idle_seconds: float | None = 30.0,
        on_attempt: Callable[[OutboxMessage, AttemptResult, MessageState], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.targets = dict(targets)
        self.policy = policy
        self.clock = clock
        self.wait = wait
        self.rng = rng
        self.idle_seconds = idle_seconds
        self.on_attempt = on_attempt
        silence_url_logging()
        self._session_factory = session_factory
        self._sessions: dict[str, requests.Session] = {}
        self._last_attempt: dict[str, float] = {}
        self._wake = {name: threading.Event() for name in self.targets}
        self._stop = threading.Event()
        self._started = False
        #: The running worker of each channel; guarded by ``_lock`` with ``targets``.
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start one worker thread per channel."""
        with self._lock:
            self._started = True
            for name in self.targets:
                self._start_worker(name)

    def _start_worker(self, name: str) -> None:
        if name in self._workers or self._stop.is_set():
            return  # its worker still runs (a channel removed and added back): it goes on
        self._wake.setdefault(name, threading.Event())
        t = threading.Thread(target=self._work, args=(name,), name=f"notify-{name}", daemon=True)
        self._workers[name] = t
        t.start()

    def retarget(self, targets: Mapping[str, Target]) -> None:
        """Deliver to ``targets`` from now on (a configuration reload).

        A new channel gets its worker; a changed one is sent with its new settings from its next
        attempt; a removed one's worker ends (after an attempt in flight) and its pending
        messages stay in the outbox.
        """
        with self._lock:
            removed = set(self.targets) - set(targets)
            self.targets = dict(targets)
            if self._started:
                for name in self.targets:
                    self._start_worker(name)
        for name in removed:
            self.wake(name)

    def wake(self, channel: str | None = None) -> None:
        """Tell a channel's worker (or every worker) that new messages are waiting."""
        for name, event in list(self._wake.items()):
            if channel is None or channel == name:
                event.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the workers; an attempt in flight finishes (bounded by its timeout)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers.values())
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        for session in self._sessions.values():
            session.close()

    # -- the work -----------------------------------------------------------------------------

    def _work(self, channel: str) -> None:
        event = self._wake[channel]
        while not self._stop.is_set():
            with self._lock:
                if channel not in self.targets:  # removed by a reload
                    del self._workers[channel]
                    return
            event.clear()
            try:
                wait = self.step(channel)
            except Exception:  # a worker must survive anything; the message stays pending
                log.exception("notification worker error", extra=fields(channel=channel))
                wait = 5.0
            if wait is None:
                event.wait()  # nothing pending: asleep until ``wake`` (a new message) or ``stop``
            elif wait > 0:
                self.wait(event, wait)

    def step(self, channel: str) -> float | None:
        """Attempt the channel's head message if it is due; return how long to wait next.

        None: nothing is pending, and ``idle_seconds`` is None: wait for ``wake``.
        """
        message = self.outbox.next_pending(channel)
        if message is None:
            return self.idle_seconds
        target = self.targets.get(channel)
        if target is None:
            return 0.0  # removed by a reload: the worker ends
        now = self.clock()
        due = max(
            message.next_attempt_at,
            self._last_attempt.get(channel, -math.inf) + target.min_interval,
        )
        if due > now:
            return due - now if self.idle_seconds is None else min(due - now, self.idle_seconds)
        self._last_attempt[channel] = now
        session = self._sessions.get(channel)
        if session is None:
            session = self._sessions[channel] = self._session_factory()
        result = send_once(session, target.request(message, now), timeout=target.timeout, now=now)
        self._record(message, result)
        return 0.0

    def _record(self, message: OutboxMessage, result: AttemptResult) -> None:
        now = self.clock()
        attempts = message.attempts + 1
        state: MessageState
        next_at = now
        if result.outcome == "ok":
            state = "delivered"
        elif result.outcome == "terminal":
            state = "failed"
        else:
            if result.retry_after is not None:
                delay = min(result.retry_after, self.policy.max_retry_after)
            else:
                delay = backoff_delay(attempts, self.policy, self.rng)
            next_at = now + delay
            state = "pending"
            if next_at - message.created_at > self.policy.max_age:
                state = "failed"
                result = replace(result, error=f"expired after {attempts} attempts: {result.error}")
        self.outbox.record_attempt(message, result, now=now, state=state, next_attempt_at=next_at)
        where = fields(
            channel=message.channel,
            rule=message.rule,
            alert=message.alert_id,
            message=message.message_id,
            event=message.event,
            attempts=attempts,
            status=result.status,
            seconds=round(result.seconds, 3),
        )
        if state == "delivered":
            log.info("notification delivered", extra=where)
        elif state == "failed":
            log.error("notification failed for good: %s", result.error, extra=where)
        else:
            log.warning(
                "notification attempt failed: %s; retrying in %.1f s",
                result.error,
                next_at - now,
                extra=where,
            )
        if self.on_attempt is not None:
            self.on_attempt(message, result, state)
