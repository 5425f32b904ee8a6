"""One bounded HTTP attempt: a ``POST`` that does not follow redirects, bounded as a whole by its
timeout (a watchdog shuts the connection down at the deadline), reading at most ``BODY_LIMIT``
bytes of the answer, with errors that never name the URL (``scrub_url_parts``).
"""

from __future__ import annotations

import html
import http.client
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

from recallwatch.records.outbox import AttemptResult
from recallwatch.retry import Outcome, classify_status, parse_retry_after

log = logging.getLogger(__name__)


DEFAULT_TIMEOUT_SECONDS = 10.0


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
