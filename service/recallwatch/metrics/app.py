"""``GET /metrics``: prometheus-client's ASGI app over metrics collected in a worker thread.

prometheus-client encodes (text or OpenMetrics by ``Accept``, gzip by ``Accept-Encoding``) and
``name[]`` selects samples by name; the collection itself reads the store, so it runs in
Starlette's thread pool: a scrape must not hold up the event loop (``/healthz`` answers meanwhile).
``?scraper=NAME`` names the scraper whose cursor chooses the checkpoint shown (``cursor``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.metrics_core import Metric
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from recallwatch.metrics.cursor import scrape

__all__ = ["MetricsApp"]


class _Collected:
    """Metrics collected once, for prometheus-client's exposition to encode (a registry's role)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics

    def restricted_registry(self, names: Any) -> _Collected:
        # Already restricted to ``name[]`` when collected.
        return self


class MetricsApp:
    """``GET /metrics``: prometheus-client's ASGI app over metrics collected in a worker thread.

    The ASGI app encodes (text or OpenMetrics by ``Accept``, gzip by ``Accept-Encoding``) and
    ``name[]`` selects samples by name; the collection itself, which reads the store, runs in
    Starlette's thread pool so that the event loop keeps answering.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def _collect(self, names: list[str] | None, scraper: str) -> list[Metric]:
        source = self.registry if names is None else self.registry.restricted_registry(names)
        with scrape(names, scraper):  # which checkpoint this scraper is shown (metrics.cursor)
            return list(source.collect())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("utf-8", errors="replace"))
        scraper = query.get("scraper", [""])[0]
        metrics = await run_in_threadpool(self._collect, query.get("name[]"), scraper)
        await make_asgi_app(_Collected(metrics))(scope, receive, send)
