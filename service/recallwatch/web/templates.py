"""The Jinja2 environment of the pages (templates are package data, autoescape on) and rendering.

Every template extends ``base.html`` (navigation, stylesheet, scripts). Values are escaped by
Jinja2's autoescape; data for scripts goes through the ``tojson`` filter into a
``<script type="application/json">`` block (``<``, ``>``, ``&`` and quotes are escaped there too),
never into inline JavaScript.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["ENV", "NAV", "fmt", "page_url", "pretty", "render", "render_string", "when"]


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: fixed digits, ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def when(ts: float | None) -> str:
    """A Unix time as ``2026-11-27 01:02:03 UTC`` (``-`` for None)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """JSON for people to read in a ``<pre>`` block: indented, keys sorted, text as written
    (``<=`` and ``…``, not ``\\u003c=``); the page's autoescape escapes it like any text. (Data for
    scripts goes through ``tojson`` instead.)"""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def page_url(*parts: str | int) -> str:
    """A page path from its parts, each percent-encoded (``page_url("runs", name)``)."""
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


ENV = Environment(
    loader=PackageLoader("recallwatch.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["fmt"] = fmt
ENV.filters["when"] = when
ENV.filters["pretty"] = pretty
ENV.globals["page_url"] = page_url
#: The navigation bar of ``base.html``: (label, path). A new top-level page appends itself.
NAV: list[tuple[str, str]] = [("Runs", "/runs"), ("Alerts", "/alerts"), ("API docs", "/docs")]
ENV.globals["nav"] = NAV


def render_string(name: str, **context: Any) -> str:
    """Render a template to a string (the report; pages use ``render``)."""
    context.setdefault("root", "")
    context.setdefault("standalone", False)
    return ENV.get_template(name).render(**context)


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; ``root`` is the app's mount prefix (a reverse proxy's ``root_path``)."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    html = render_string(name, root=root, path=request.url.path, **context)
    # The security headers (CSP, nosniff, ...) come from ``security.SecurityHeaders``.
    return HTMLResponse(html, status_code=status_code)
