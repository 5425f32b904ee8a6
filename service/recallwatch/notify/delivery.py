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

import email.utils
import html
import http.client
import logging
import math
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

from recallwatch.logs import fields
from recallwatch.notify.messages import AttemptResult, MessageState, OutboxMessage, Outcome

__all__ = [
    "AttemptResult",
    "DeadlineAdapter",
    "Dispatcher",
    "MemoryOutbox",
    "Outbox",
    "OutboxMessage",
    "Outgoing",
    "RetryPolicy",
    "Target",
    "backoff_delay",
    "classify_status",
    "new_session",
    "parse_retry_after",
    "scrub_url_parts",
    "send_once",
    "silence_url_logging",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Random = Callable[[], float]

DEFAULT_TIMEOUT_SECONDS = 10.0


# -- pure retry arithmetic ------------------------------------------------------------------------


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


# -- one attempt ----------------------------------------------------------------------------------


class _NoUrlRecords(logging.Filter):
    """Drop urllib3's connection-pool records: they name request paths, and a Slack webhook's
    path is its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


_URL_FILTER = _NoUrlRecords()


def silence_url_logging() -> None:
    """Keep urllib3 from logging request URLs (idempotent; debug logging included)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _URL_FILTER not in logger.filters:
        logger.addFilter(_URL_FILTER)


@dataclass(frozen=True)
class Outgoing:
    """One HTTP request to make; ``repr`` hides the URL and headers (they may hold secrets)."""

    url: str = field(repr=False)
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def _snippet(text: str, limit: int = 200) -> str:
    clean = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return clean[:limit] + ("…" if len(clean) > limit else "")


#: At most this much of a response body is read (for the error snippet).
BODY_LIMIT = 4096
#: Path segments, query values and userinfo at least this long are scrubbed from snippets.
_MIN_SCRUBBED = 6
_REDACTED = "[redacted]"


def scrub_url_parts(text: str, url: str) -> str:
    """``text`` without the path, query or userinfo of ``url`` (a 404 page may echo them)."""
    try:
        parts = urllib.parse.urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return text
    whole = {parts.query, f"{parts.path}?{parts.query}" if parts.query else parts.path}
    if parts.path not in ("", "/"):
        whole.add(parts.path)
    # Pieces too short to be secret are left alone: replacing them would garble the text.
    pieces = {w for w in whole if len(w) > 1}
    for piece in (
        username or "",
        password or "",
        *parts.path.split("/"),
        *(v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
    ):
        if len(piece) >= _MIN_SCRUBBED:
            pieces.add(piece)
    variants: set[str] = set()
    for piece in pieces:
        for form in (piece, urllib.parse.unquote(piece), urllib.parse.unquote_plus(piece)):
            variants.update({form, form.replace("/", "\\/"), html.escape(form)})
    variants.discard("")
    for piece in sorted(variants, key=len, reverse=True):
        text = text.replace(piece, _REDACTED)
    return text


class _Attempt:
    """One attempt's connection, shut down by a watchdog when its deadline passes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connection: object | None = None
        self.expired = False
        self.done = False

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            sock = getattr(self.connection, "sock", None)
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self.lock:
            self.done = True


_tracking = threading.local()


def _track(connection: object) -> None:
    attempt = getattr(_tracking, "attempt", None)
    if isinstance(attempt, _Attempt):
        with attempt.lock:
            attempt.connection = connection


class _TrackedHTTPPool(urllib3.HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        conn = super()._get_conn(timeout)
        _track(conn)
        return conn


class _TrackedHTTPSPool(urllib3.HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        conn = super()._get_conn(timeout)
        _track(conn)
        return conn


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections ``send_once`` can shut down at an attempt's deadline
    while the response headers are still arriving."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Make the pool manager use pools that tell ``send_once`` which connection is in use."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


def new_session() -> requests.Session:
    """An HTTP session for delivery: its attempts are bounded by their deadline throughout."""
    session = requests.Session()
    session.mount("http://", DeadlineAdapter())
    session.mount("https://", DeadlineAdapter())
    return session


def _connection_error(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError | http.client.RemoteDisconnected):
            return "connection closed by the receiver"
        if isinstance(current, socket.gaierror):
            return "host name not resolved"
        current = current.__cause__ or current.__context__ or _first_arg_error(current)
    return "connection error"


def _first_arg_error(exc: BaseException) -> BaseException | None:
    # urllib3 wraps the socket error in the first argument of its exceptions.
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return arg
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            return reason
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


#: Errors raised before anything was sent, that a retry cannot fix.
_NOT_SENT = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


def send_once(
    session: requests.Session,
    request: Outgoing,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    now: float | None = None,
) -> AttemptResult:
    """Make one ``POST`` attempt (no redirects followed, at most ``timeout`` s) and classify it.

    ``timeout`` bounds the whole attempt: a watchdog shuts the connection down at the deadline,
    so a receiver that trickles its answer cannot hold the channel. Errors never name the URL.
    """
    t0 = time.monotonic()
    attempt = _Attempt()
    watchdog = threading.Timer(timeout, attempt.expire)
    watchdog.daemon = True
    _tracking.attempt = attempt
    watchdog.start()
    try:
        return _attempt(session, request, attempt, timeout, t0, now)
    finally:
        attempt.finish()
        watchdog.cancel()
        _tracking.attempt = None


def _attempt(
    session: requests.Session,
    request: Outgoing,
    attempt: _Attempt,
    timeout: float,
    t0: float,
    now: float | None,
) -> AttemptResult:
    timed_out = f"timed out after {timeout:g} s"
    try:
        response = session.post(
            request.url,
            data=request.body,
            headers=dict(request.headers),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
    except Exception as exc:
        failed, why = _no_answer(exc, timed_out, expired=attempt.expired)
        return AttemptResult(failed, error=why, seconds=_since(t0))
    with response:
        if attempt.expired:  # cut off while the headers came in: what arrived is not an answer
            return AttemptResult("retry", error=timed_out, seconds=_since(t0))
        if response.raw is not None and getattr(response.raw, "connection", None) is not None:
            _track_now(attempt, response.raw.connection)
        status = response.status_code
        outcome = classify_status(status)
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), time.time() if now is None else now
            )
        error: str | None = None
        if outcome != "ok":
            redirect = 300 <= status < 400
            kind = "redirect not followed" if redirect else "HTTP error"
            body = "" if redirect else _snippet(scrub_url_parts(_read_some(response), request.url))
            error = f"{kind} {status}" + (f": {body}" if body else "")
    return AttemptResult(outcome, status, error, retry_after, _since(t0))


def _no_answer(exc: Exception, timed_out: str, *, expired: bool) -> tuple[Outcome, str]:
    """Classify an attempt that raised before a response came (``expired``: deadline passed)."""
    if isinstance(exc, requests.Timeout):
        return "retry", timed_out
    if isinstance(exc, _NOT_SENT):  # a malformed URL and the like: retrying won't help
        return "terminal", f"request not sent ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        return "retry", timed_out if expired else _connection_error(exc)
    if isinstance(exc, requests.RequestException):  # sent, then the answer broke: worth a retry
        return "retry", timed_out if expired else f"request failed ({type(exc).__name__})"
    # Anything else (e.g. urllib3's LocationParseError) is a request that could not be made; its
    # text would name the URL, so only its type is kept.
    return "terminal", f"request not sent ({type(exc).__name__})"


def _track_now(attempt: _Attempt, connection: object) -> None:
    with attempt.lock:
        attempt.connection = connection
    if attempt.expired:  # the deadline passed while the headers came in
        attempt.expire()


def _read_some(response: requests.Response) -> str:
    """Up to ``BODY_LIMIT`` bytes of the body as text; whatever arrived before an error."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < BODY_LIMIT:
            chunk = response.raw.read(min(512, BODY_LIMIT - size), decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception:  # a broken, undecodable or cut-off body: keep what came before
        pass
    data = b"".join(chunks)[:BODY_LIMIT]
    try:
        return data.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _since(t0: float) -> float:
    return time.monotonic() - t0


# -- the outbox the dispatcher reads --------------------------------------------------------------


class Outbox(Protocol):
    """Storage of outbox messages, as the dispatcher needs it.

    Implemented by the store (``recallwatch.store.outbox.SqliteOutbox``, the daemon's
    ``store.outbox``) and in memory by ``MemoryOutbox``.
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
        policy: RetryPolicy = RetryPolicy(),
        session_factory: Callable[[], requests.Session] = new_session,
        clock: Clock = time.time,
        rng: Random = random.random,
        idle_seconds: float = 30.0,
        on_attempt: Callable[[OutboxMessage, AttemptResult, MessageState], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.targets = dict(targets)
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.idle_seconds = idle_seconds
        self.on_attempt = on_attempt
        silence_url_logging()
        self._session_factory = session_factory
        self._sessions: dict[str, requests.Session] = {}
        self._last_attempt: dict[str, float] = {}
        self._wake = {name: threading.Event() for name in self.targets}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start one worker thread per channel."""
        for name in self.targets:
            t = threading.Thread(
                target=self._work, args=(name,), name=f"notify-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def wake(self, channel: str | None = None) -> None:
        """Tell a channel's worker (or every worker) that new messages are waiting."""
        for name, event in self._wake.items():
            if channel is None or channel == name:
                event.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the workers; an attempt in flight finishes (bounded by its timeout)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for session in self._sessions.values():
            session.close()

    # -- the work -----------------------------------------------------------------------------

    def _work(self, channel: str) -> None:
        event = self._wake[channel]
        while not self._stop.is_set():
            event.clear()
            try:
                wait = self.step(channel)
            except Exception:  # a worker must survive anything; the message stays pending
                log.exception("notification worker error", extra=fields(channel=channel))
                wait = 5.0
            if wait > 0:
                event.wait(wait)

    def step(self, channel: str) -> float:
        """Attempt the channel's head message if it is due; return how long to wait next."""
        message = self.outbox.next_pending(channel)
        if message is None:
            return self.idle_seconds
        target = self.targets[channel]
        now = self.clock()
        due = max(
            message.next_attempt_at,
            self._last_attempt.get(channel, -math.inf) + target.min_interval,
        )
        if due > now:
            return min(due - now, self.idle_seconds)
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
