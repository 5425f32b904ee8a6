"""Mounting the web layer on the daemon's FastAPI app: pages, static assets, offline docs."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from recallwatch.errors import InputError
from recallwatch.store import Store
from recallwatch.views.rescored import Rescorer
from recallwatch.web import pages
from recallwatch.web.assets import mount_assets
from recallwatch.web.auth import TokenRequiredError
from recallwatch.web.context import STATE_KEY, WebContext, WebSettings

__all__ = ["WebSettings", "mount"]


async def _unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenRequiredError)
    return exc.response


async def _bad_input(request: Request, exc: Exception) -> Response:
    # A file a page reads (a mined set, a corpus) that cannot be used: 422, located, never a 500.
    assert isinstance(exc, InputError)
    where = {"file": None if exc.path is None else str(exc.path), "line": exc.line}
    return JSONResponse({"detail": str(exc), **where, "field": exc.field}, status_code=422)


def mount(
    app: FastAPI,
    store: Store,
    settings: WebSettings | None = None,
    rescorer: Rescorer | None = None,
) -> None:
    """Add the pages (``pages.ROUTERS``), ``/static/...`` and ``/docs`` to ``app``.

    ``app`` must be created with ``docs_url=None, redoc_url=None``: FastAPI's own docs pages load
    their scripts from a CDN; this ``/docs`` loads them from this server.
    """
    setattr(app.state, STATE_KEY, WebContext(store, settings or WebSettings(), rescorer=rescorer))
    app.add_exception_handler(TokenRequiredError, _unauthorized)
    app.add_exception_handler(InputError, _bad_input)
    mount_assets(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("runs", status_code=307)

    for router in pages.ROUTERS:
        app.include_router(router, include_in_schema=False)
