"""The optional read token of the web pages, and the request guards pages share.

With ``http.web_token_env`` / ``http.web_token_file`` set, a page answers only a request that
carries the token, by one of:

- ``?token=TOKEN`` on any page: the answer is a redirect to the same URL without it, setting the
  ``recallwatch_token`` cookie (HttpOnly, SameSite=Strict), so the token leaves the address bar;
- the ``recallwatch_token`` cookie;
- ``Authorization: Bearer TOKEN``.

The same token, when set, guards the JSON API (``/api/v1/...``, ``authorize_api``): by the
``Authorization: Bearer TOKEN`` header (API clients) or the cookie (the pages' own scripts). An API
refusal is a JSON 401. ``/metrics`` has its own optional bearer token (``http.metrics_token_env``,
``BearerGuard``), the one Prometheus' ``authorization`` scrape setting sends. ``/healthz``,
``/readyz``, ``/docs``, ``/openapi.json`` and ``/static`` stay open: they hold no data.

Without a token configured the pages and the API are open. Pages only read, so they need
no CSRF protection; a page that accepts a POST checks ``same_origin`` and reads its body with
``read_form`` (bounded).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "COOKIE",
    "MAX_FORM_BYTES",
    "BearerGuard",
    "TokenRequiredError",
    "authorize",
    "authorize_api",
    "read_form",
    "same_origin",
]

COOKIE = "recallwatch_token"
#: The largest form body a page reads (``read_form``); more is refused with 413.
MAX_FORM_BYTES = 64 * 1024


class TokenRequiredError(Exception):
    """A page request without the read token (or with a token to move into the cookie)."""

    def __init__(self, response: Response) -> None:
        super().__init__("unauthorized")
        self.response = response


def _matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def authorize(request: Request, token: str | None) -> None:
    """Let the request through, or raise ``TokenRequiredError`` with the answer to give."""
    if token is None:
        return
    query = request.query_params.get("token")
    if query is not None:
        if not _matches(query, token):
            raise TokenRequiredError(_refused(request))
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        raise TokenRequiredError(response)
    if _matches(_bearer(request.headers.get("authorization")), token) or _matches(
        request.cookies.get(COOKIE), token
    ):
        return
    raise TokenRequiredError(_refused(request))


def _bearer(header: str | None) -> str | None:
    value = header or ""
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def authorize_api(request: Request, token: str | None) -> None:
    """Let an API request through (bearer token or the pages' cookie), or raise a JSON 401."""
    if token is None:
        return
    if _matches(_bearer(request.headers.get("authorization")), token) or _matches(
        request.cookies.get(COOKIE), token
    ):
        return
    raise HTTPException(
        status_code=401,
        detail="a read token is required: send Authorization: Bearer TOKEN",
        headers={"WWW-Authenticate": "Bearer"},
    )


class BearerGuard:
    """ASGI wrapper: pass requests with ``Authorization: Bearer TOKEN`` on, answer others 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the bearer token, then call the wrapped app."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["type"] == "http" and not _matches(
            _bearer(headers.get("authorization")), self._token
        ):
            body = b"a bearer token is required (http.metrics_token_env)\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _refused(request: Request) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>recallwatch: token "
        "required</title></head><body><h1>A read token is required</h1><p>Open this page with "
        "<code>?token=...</code> once (it is then kept in a cookie), or send "
        "<code>Authorization: Bearer ...</code>.</p></body></html>"
    )
    return HTMLResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def same_origin(request: Request) -> None:
    """Refuse (403) a state-changing request whose ``Origin``/``Referer`` is another site."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", "")
    if source is None:
        raise HTTPException(status_code=403, detail="missing Origin header")
    authority = source.split("://", 1)[-1].split("/", 1)[0]
    if authority != host:
        raise HTTPException(status_code=403, detail="cross-origin request refused")


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, list[str]]:
    """An urlencoded form body, read up to ``max_bytes`` (413 beyond, 415 if not a form)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(status_code=415, detail="expected an urlencoded form")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(status_code=413, detail=f"form larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(status_code=413, detail=f"form larger than {max_bytes} bytes")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
