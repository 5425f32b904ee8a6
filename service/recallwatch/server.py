"""HTTP: ``/metrics``, ``/healthz``, ``/readyz``, the JSON API and the web pages (FastAPI, uvicorn).

FastAPI gives typed responses and an OpenAPI document (``/openapi.json``, ``/docs``) for free;
every answer the API gives is declared in it (the 404 of an unknown run, checkpoint or alert, the
503 of an unhealthy daemon), and a schema fuzzer (schemathesis) checks so in the tests. uvicorn
runs the app in a thread of the daemon process on a socket bound up front, so a busy port is a
clear start-up error and port 0 works (the chosen port is logged).

``/metrics`` is ``metrics.app.MetricsApp``: prometheus-client's ASGI app (gzip when asked,
``name[]`` filtering, OpenMetrics by ``Accept``), fed with the registry's metrics collected in a
worker thread, so that a scrape, which reads the store, does not hold up the event loop.

The JSON API's routes and response models live in ``api``; the web pages in ``web``. Every
response carries the security headers of ``web.security``; the read token (``http.web_token_env``)
guards the API as it does the pages, and ``/metrics`` takes an optional bearer token
(``http.metrics_token_env``); ``/healthz`` and ``/readyz`` stay open (``web.auth``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recallwatch import api
from recallwatch.errors import ConfigError
from recallwatch.metrics.app import MetricsApp
from recallwatch.metrics.health import DaemonHealthCollector
from recallwatch.store import Store
from recallwatch.views.rescored import Rescorer
from recallwatch.web import WebSettings, mount
from recallwatch.web.auth import BearerGuard, authorize_api
from recallwatch.web.security import SecurityHeaders

__all__ = ["HttpServer", "create_app"]

log = logging.getLogger(__name__)


# -- response models ------------------------------------------------------------------------------


class Health(BaseModel):
    """Liveness: ``ok``, or what is dead."""

    status: str


class Unauthorized(BaseModel):
    """The read token (``http.web_token_env``) is missing or wrong."""

    detail: str


class Readiness(BaseModel):
    """Readiness: each check, the last poll and what is running."""

    ready: bool
    #: Why not ready (``store_unavailable: database or disk is full``, or the failed checks).
    reason: str | None = None
    checks: dict[str, bool]
    last_poll_at: float | None
    last_poll_error: str | None
    evaluating: int
    #: ``restart_required``: sections a SIGHUP reload changed that only a restart applies.
    config: dict[str, list[str]] | None = None
    #: Handled without an error since the start: ``alerts_suppressed`` (by reason),
    #: ``review_labels_restored``, ``review_undos_restored`` (docs/daemon.md#metrics).
    handled: dict[str, int | dict[str, int]] | None = None


# -- the application ---------------------------------------------------------------------


def create_app(
    store: Store,
    registry: CollectorRegistry,
    *,
    readiness: Callable[[], dict[str, Any]],
    version: str,
    web: WebSettings | None = None,
) -> FastAPI:
    """The FastAPI application over a store, a metrics registry and the daemon's readiness."""
    app = FastAPI(
        title="recallwatch",
        version=version,
        description="Retrieval recall of every checkpoint of watched training runs.",
        # The web layer serves /docs and /redoc from local assets (FastAPI's load from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    settings = web or WebSettings()
    # One set of security headers (CSP, nosniff, ...) on every answer: pages, API, metrics, docs.
    app.add_middleware(SecurityHeaders)
    # The daemon's own health (what /readyz knows) as metrics, next to the store's.
    registry.register(DaemonHealthCollector(readiness))
    metrics: ASGIApp = MetricsApp(registry)
    if settings.metrics_token is not None:
        metrics = BearerGuard(metrics, settings.metrics_token)
    app.router.routes.append(Route("/metrics", metrics, methods=["GET"], include_in_schema=False))

    @app.get(
        "/healthz",
        response_model=Health,
        summary="Liveness: the process answers and its scheduler runs",
        responses={503: {"model": Health, "description": "The scheduler is not running"}},
    )
    def healthz() -> JSONResponse:
        # A dead scheduler never polls again: restarting the process is the cure (liveness probe).
        # Only a scheduler the daemon reports stopped fails it (a readiness without that check
        # has no scheduler to watch).
        alive = readiness().get("checks", {}).get("scheduler", True) is not False
        return JSONResponse(
            {"status": "ok" if alive else "scheduler not running"},
            status_code=200 if alive else 503,
        )

    @app.get(
        "/readyz",
        response_model=Readiness,
        summary="Readiness: store open, scheduler running, last poll recent",
        responses={503: {"model": Readiness, "description": "Not ready: a check failed"}},
    )
    def readyz() -> JSONResponse:
        state = readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    token = settings.token
    # One cache of re-scored evaluations for the API and the pages.
    rescorer = Rescorer(store, settings.qrels_sources())

    def api_reader(request: Request) -> None:
        authorize_api(request, token)

    app.include_router(
        api.router(store, rescorer),
        # The read token guards the API as it does the pages (the API returns query texts).
        dependencies=[Depends(api_reader)] if token is not None else [],
        responses={401: {"model": Unauthorized}} if token is not None else {},
    )
    mount(app, store, settings, rescorer)
    return app


# -- serving -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn's server, asleep until a request or a stop: no periodic tick.

    uvicorn's loop wakes ten times a second to refresh its ``Date`` header and to notice a stop;
    here ``_Dated`` dates each response and ``request_exit`` wakes the loop, so an idle daemon's
    HTTP thread costs nothing.
    """

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()  # before _loop: request_exit needs both
        self._loop = asyncio.get_running_loop()
        await self.on_tick(0)  # uvicorn's default headers, once
        while not self.should_exit:
            await self._wake.wait()
            self._wake.clear()

    def request_exit(self) -> None:
        """Ask the serving loop to finish (from any thread)."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)


class _Dated:
    """ASGI middleware: the ``Date`` header of each response, as uvicorn's tick would set it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._second = -1
        self._date = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; date the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"date", self._now())]
            await send(message)

        await self.app(scope, receive, dated)

    def _now(self) -> bytes:
        now = time.time()
        if int(now) != self._second:
            self._second, self._date = int(now), formatdate(now, usegmt=True).encode()
        return self._date


class HttpServer:
    """uvicorn serving an app on a socket bound at construction, in a background thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                [("http.listen", f"cannot listen on {host}:{port}: {exc.strerror or exc}")]
            ) from None
        sock.listen(128)
        sock.set_inheritable(False)
        self.socket = sock
        self.host = host
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            _Dated(app), log_config=None, access_log=False, lifespan="off", date_header=False
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish open requests and stop serving."""
        self._server.request_exit()
        self._thread.join(timeout)
        self.socket.close()
