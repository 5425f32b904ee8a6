"""The security headers of every answer the HTTP server gives: pages, API, ``/metrics``, ``/docs``.

``SecurityHeaders`` is an ASGI middleware (``app.add_middleware(SecurityHeaders)``, once, in
``server.create_app``) that adds ``HEADERS`` to each response that does not set them itself. One
response sets its own policy: ``/docs`` allows the one inline script of Swagger UI by its hash
(``csp_allowing``), everything else gets ``CONTENT_SECURITY_POLICY`` as it is.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "HEADERS", "SecurityHeaders", "csp_allowing"]

#: Everything a page loads comes from this server; nothing inline runs but JSON data; no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)

#: The headers every response carries (lower-case names, as ASGI sends them).
HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def csp_allowing(scripts: Iterable[str]) -> str:
    """``CONTENT_SECURITY_POLICY`` that also runs these inline scripts (by their sha256)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self' {hashes}")


class SecurityHeaders:
    """ASGI middleware: add ``HEADERS`` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.encode(), v.encode()) for k, v in HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._headers if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
