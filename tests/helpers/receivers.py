"""Real HTTP receivers on loopback that record what they get and can fail on purpose.

The ``receiver`` fixture is registered by the conftest of each test directory that uses it
(``from tests.helpers.receivers import receiver``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """What to answer: a status with headers and body, or ``hang`` / ``close`` the connection."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False
    close: bool = False


OK = Reply()
HANG = Reply(hang=True)
CLOSE = Reply(close=True)

#: Decides the reply to the n-th request (0-based).
Script = Callable[[int, Received], Reply]


def always(reply: Reply) -> Script:
    """Answer every request the same way."""
    return lambda n, r: reply


def first(n_bad: int, bad: Reply, then: Reply = OK) -> Script:
    """Answer the first ``n_bad`` requests with ``bad``, then ``then``."""
    return lambda n, r: bad if n < n_bad else then


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1:0 that records requests and replies by a script."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or always(OK)
        self.requests: list[Received] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                got = Received(time.monotonic(), self.path, dict(self.headers.items()), body)
                with receiver._lock:
                    n = len(receiver.requests)
                    receiver.requests.append(got)
                reply = receiver.script(n, got)
                if reply.hang:
                    receiver.release.wait(60)
                    self.close_connection = True
                    return
                if reply.close:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The receiver's base URL."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Receiver:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Release hanging handlers and shut the server down."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def received(self) -> list[Received]:
        """A snapshot of the requests so far."""
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """A factory of started ``Receiver``s, all stopped at teardown."""
    started: list[Receiver] = []

    def make(script: Script | None = None) -> Receiver:
        r = Receiver(script or always(OK)).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
