"""Mounting the web layer on the daemon's FastAPI app: pages, static assets, offline docs."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from recallwatch.store import Store
from recallwatch.web import pages
from recallwatch.web.assets import mount_assets
from recallwatch.web.auth import TokenRequiredError
from recallwatch.web.context import STATE_KEY, WebContext, WebSettings

__all__ = ["WebSettings", "mount"]


async def _unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenRequiredError)
    return exc.response


def mount(app: FastAPI, store: Store, settings: WebSettings | None = None) -> None:
    """Add the pages (``pages.ROUTERS``), ``/static/...`` and ``/docs`` to ``app``.

    ``app`` must be created with ``docs_url=None, redoc_url=None``: FastAPI's own docs pages load
    their scripts from a CDN; this ``/docs`` loads them from this server.
    """
    setattr(app.state, STATE_KEY, WebContext(store, settings or WebSettings()))
    app.add_exception_handler(TokenRequiredError, _unauthorized)
    mount_assets(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("runs", status_code=307)

    for router in pages.ROUTERS:
        app.include_router(router, include_in_schema=False)
