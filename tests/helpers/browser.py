"""A real headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, for page tests.

Register the fixtures in a conftest (``from tests.helpers.browser import browser, tab``):

- ``browser``: one Chromium per test session (skipped where Chromium or Playwright is missing);
- ``tab``: a fresh context and page per test, as a ``Tab`` that records every request the page
  makes (``tab.requests``), console errors and page errors (``tab.errors``);
- ``live_app(app)``: serve a FastAPI app on 127.0.0.1 with the daemon's real ``HttpServer``.

Playwright's own browser downloads are never used (``playwright install`` is not run).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers.processes import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


#: The one Playwright driver and browser of the process, and how many fixtures hold them: the
#: fixture is registered by several conftests (one session fixture each), and Playwright's sync
#: API allows one driver at a time.
_SHARED: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium for the whole session."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    if not _SHARED["users"]:
        _SHARED["driver"] = sync_api.sync_playwright().start()
        _SHARED["browser"] = _SHARED["driver"].chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
    _SHARED["users"] += 1
    try:
        yield _SHARED["browser"]
    finally:
        _SHARED["users"] -= 1
        if not _SHARED["users"]:
            _SHARED.pop("browser").close()
            _SHARED.pop("driver").stop()


@dataclass
class Tab:
    """A page with its request log and its console and page errors."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def off_host(self, allowed: tuple[str, ...] = ("127.0.0.1",)) -> list[str]:
        """Requests to anything but ``allowed`` hosts (``file:``, ``data:``, ``about:`` pass)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in {"file", "data", "about", "blob"}:
                continue
            if parts.hostname not in allowed:
                out.append(url)
        return out


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A fresh browser context and page, recording requests and errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    t = Tab(page)
    page.on("request", lambda r: t.requests.append(r.url))
    page.on("console", lambda m: t.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: t.errors.append(str(e)))
    yield t
    context.close()


@contextmanager
def live_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) with the daemon's ``HttpServer``; yield its URL."""
    from recallwatch.server import HttpServer

    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        wait_for(lambda: _answers(server.url), timeout=30, what="the web app to answer")
        yield server.url
    finally:
        server.stop()


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code in {200, 503}
    except requests.ConnectionError:
        return False


def json_of(tab: Tab, selector: str) -> Callable[[], Any]:
    """A reader of the JSON in a ``<script type=application/json>`` element of the page."""
    return lambda: tab.page.eval_on_selector(selector, "e => JSON.parse(e.textContent)")
