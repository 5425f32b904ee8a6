"""A real HTTP judge on loopback for the oracle and ``fn-rate`` tests; the secrets it must hide."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Credentials that must appear in no message, log line, stored spec or report.
TOKEN = "Bearer tok-9f8e7d6c5b4a"
QUERY_SECRET = "qs-1a2b3c4d"
PASSWORD = "pw-5e6f7a8b"


def secrets_in(text: str) -> list[str]:
    """The test credentials that leaked into ``text``."""
    return [s for s in (TOKEN, "tok-9f8e7d6c5b4a", QUERY_SECRET, PASSWORD) if s in text]


Handler = Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]


@contextmanager
def judge_server(handler: Handler) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run a judge endpoint on 127.0.0.1:0; yield its URL and the requests it received."""
    received: list[dict[str, Any]] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            handler(self, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/judge", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reply(
    h: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def good_judge(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
    results = [
        {
            "id": p["id"],
            "label": "relevant" if "cat" in p["document"].lower() else "not_relevant",
            "score": 0.5,
        }
        for p in reversed(body["pairs"])  # any order: matched by id
    ]
    reply(h, 200, {"results": results})
