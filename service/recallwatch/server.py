"""HTTP: ``/metrics``, ``/healthz``, ``/readyz`` and the JSON API (FastAPI, served by uvicorn).

FastAPI gives typed responses and an OpenAPI document (``/openapi.json``, ``/docs``) for free;
every answer the API gives is declared in it (the 404 of an unknown run, checkpoint or alert, the
503 of an unhealthy daemon), and a schema fuzzer (schemathesis) checks so in the tests. uvicorn
runs the app in a thread of the daemon process on a socket bound up front, so a busy port is a
clear start-up error and port 0 works (the chosen port is logged).

``/metrics`` is prometheus-client's ASGI app (gzip when asked, ``name[]`` filtering, OpenMetrics
by ``Accept``), fed with the registry's metrics collected in a worker thread: a scrape reads the
store, and that must not hold up the event loop (``/healthz`` answers meanwhile).

API times are Unix timestamps in seconds, like Prometheus'.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from recallwatch.errors import ConfigError
from recallwatch.export_cursor import scrape
from recallwatch.exporter import DaemonHealthCollector
from recallwatch.store import AlertRecord, CheckpointRow, EvaluationRow, Store

if TYPE_CHECKING:
    from recallwatch.web import WebSettings

__all__ = ["HttpServer", "MetricsApp", "create_app", "outcome_summary"]

log = logging.getLogger(__name__)


# -- response models ------------------------------------------------------------------------------


class NotFound(BaseModel):
    """No run, checkpoint or alert of that name."""

    detail: str


class Health(BaseModel):
    """Liveness: ``ok``, or what is dead."""

    status: str


class Readiness(BaseModel):
    """Readiness: each check, the last poll and what is running."""

    ready: bool
    checks: dict[str, bool]
    last_poll_at: float | None
    last_poll_error: str | None
    evaluating: int


#: The largest page offset: SQLite integers are 64-bit (a larger one was a 500, found by the
#: schema fuzzer); no store holds a billion checkpoints or alerts.
MAX_OFFSET = 1_000_000_000

#: The 404 answer of every path with a parameter, as the OpenAPI document declares it.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": NotFound}}


class Evaluation(BaseModel):
    """One evaluation of a checkpoint on one held-out set."""

    dataset: str
    encoder: str
    #: the encoder's numeric precision (fp32, bf16, fp16); null for precomputed embeddings.
    #: Regression rules compare only evaluations of the same precision.
    precision: str | None = None
    config_hash: str
    status: str
    started_at: float
    finished_at: float
    duration_seconds: float
    #: metric -> k -> mean over the evaluated queries
    metrics: dict[str, dict[str, float]]
    reason: str | None = None
    message: str | None = None


class EvaluationDetail(Evaluation):
    """An evaluation with its counts, stage timings and per-query outcomes."""

    counts: dict[str, int]
    timings_seconds: dict[str, float]
    outcome_summary: dict[str, Any] | None = None
    #: query id -> relevant doc id -> rank in the top max(k), 0 when not retrieved
    per_query: dict[str, dict[str, int]] | None = None


class Checkpoint(BaseModel):
    """A checkpoint, its state and its current evaluations."""

    name: str
    step: int | None
    state: str
    reason: str | None
    message: str | None
    mining_fingerprint: str | None
    completed_at: float
    discovered_at: float
    updated_at: float
    attempts: int
    #: queued again only to retry its false-negative audit (its evaluations are stored)
    audit_only: bool
    evaluations: list[Evaluation]


class FalseNegatives(BaseModel):
    """The false-negative estimate of the mined set the checkpoint trained on."""

    oracle: str
    sample_size: int
    false_negatives: int
    estimate: float
    lower: float
    upper: float
    random_estimate: float | None
    amplification: float | None
    buckets: list[dict[str, Any]]


class AuditFailure(BaseModel):
    """The latest failed false-negative audit of a checkpoint's mined set."""

    reason: str
    message: str
    failed_at: float


class CheckpointDetail(Checkpoint):
    """A checkpoint with its mining metadata, every evaluation in detail and FN estimate."""

    path: str
    mining: Any
    mining_error: str | None
    evaluations: list[EvaluationDetail]  # type: ignore[assignment]
    history: list[Evaluation]
    false_negatives: FalseNegatives | None
    false_negative_audit_failure: AuditFailure | None = None


class Run(BaseModel):
    """A watched run."""

    name: str
    directory: str
    checkpoints: dict[str, int]
    latest_checkpoint: str | None
    latest_step: int | None
    last_successful_evaluation_at: float | None


class CheckpointPage(BaseModel):
    """A page of checkpoints, newest first; follow ``next_offset`` until it is null."""

    items: list[Checkpoint]
    total: int
    limit: int
    offset: int
    next_offset: int | None


# -- conversions ----------------------------------------------------------------------------------


def _evaluation(e: EvaluationRow) -> dict[str, Any]:
    return {
        "dataset": e.dataset,
        "encoder": e.encoder,
        "precision": e.precision,
        "config_hash": e.config_hash,
        "status": e.status,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "duration_seconds": max(0.0, e.finished_at - e.started_at),
        "metrics": {m: {str(k): v for k, v in by_k.items()} for m, by_k in e.metrics.items()},
        "reason": e.reason,
        "message": e.message,
    }


def _checkpoint(c: CheckpointRow, evaluations: list[EvaluationRow]) -> dict[str, Any]:
    return {
        "name": c.name,
        "step": c.step,
        "state": c.state,
        "reason": c.state_reason,
        "message": c.state_message,
        "mining_fingerprint": c.mining_fingerprint,
        "completed_at": c.completed_at,
        "discovered_at": c.discovered_at,
        "updated_at": c.updated_at,
        "attempts": c.attempts,
        "audit_only": c.audit_only,
        "evaluations": [_evaluation(e) for e in evaluations],
    }


def _shown(store: Store, c: CheckpointRow) -> list[EvaluationRow]:
    """Current evaluations, or the failure that made the checkpoint fail."""
    current = store.results.current_evaluations(c.id)
    if c.state == "failed":
        failed = [e for e in store.results.evaluations(c.id) if e.status == "failed"]
        return current + failed[-1:]
    return current


def outcome_summary(outcomes: dict[str, dict[str, int]], ks: list[int]) -> dict[str, Any]:
    """Summarise per-query outcomes: hits per k and the queries with no relevant document found."""
    kmax = max(ks) if ks else 0
    pairs = [r for ranks in outcomes.values() for r in ranks.values()]
    missed = sorted(
        q for q, ranks in outcomes.items() if not any(0 < r <= kmax for r in ranks.values())
    )
    return {
        "queries": len(outcomes),
        "relevant_pairs": len(pairs),
        "queries_with_relevant_in_top_k": {
            str(k): sum(1 for ranks in outcomes.values() if any(0 < r <= k for r in ranks.values()))
            for k in ks
        },
        "relevant_in_top_k": {str(k): sum(1 for r in pairs if 0 < r <= k) for k in ks},
        "queries_without_relevant_in_top_max_k": len(missed),
        "first_queries_without_relevant": missed[:20],
    }


class Delivery(BaseModel):
    """One notification of an alert to one channel, and how its delivery went."""

    message_id: str
    channel: str
    event: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float | None
    delivered_at: float | None
    last_status: int | None
    last_error: str | None


class AlertItem(BaseModel):
    """An alert with its evidence (the webhook schema's ``data``) and its deliveries."""

    id: str
    rule: str
    run: str
    status: str
    opened_at: float
    last_notified_at: float
    resolved_at: float | None
    repeats: int
    alert: dict[str, Any]
    deliveries: list[Delivery]


class AlertPage(BaseModel):
    """A page of alerts, newest first."""

    alerts: list[AlertItem]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def _alert_item(store: Store, record: AlertRecord) -> dict[str, Any]:
    return {
        "id": record.alert.id,
        "rule": record.rule,
        "run": record.alert.run,
        "status": record.status,
        "opened_at": record.opened_at,
        "last_notified_at": record.last_notified_at,
        "resolved_at": record.resolved_at,
        "repeats": record.repeats,
        "alert": record.alert.as_dict(),
        "deliveries": [
            {
                "message_id": m.message_id,
                "channel": m.channel,
                "event": m.event,
                "state": m.state,
                "attempts": m.attempts,
                "created_at": m.created_at,
                "next_attempt_at": m.next_attempt_at if m.state == "pending" else None,
                "delivered_at": m.delivered_at,
                "last_status": m.last_status,
                "last_error": m.last_error,
            }
            for m in store.outbox.deliveries(record.alert.id)
        ],
    }


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
    # The daemon's own health (what /readyz knows) as metrics, next to the store's.
    registry.register(DaemonHealthCollector(readiness))
    app.router.routes.append(
        Route("/metrics", MetricsApp(registry), methods=["GET"], include_in_schema=False)
    )

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

    def checked_run(run: str) -> None:
        if run not in {r.name for r in store.views.runs()}:
            raise HTTPException(status_code=404, detail=f"no run named {run!r}")

    @app.get("/api/v1/runs", response_model=list[Run], summary="The watched runs")
    def runs() -> list[dict[str, Any]]:
        return [
            {
                "name": r.name,
                "directory": r.directory,
                "checkpoints": r.states,
                "latest_checkpoint": r.latest.name if r.latest else None,
                "latest_step": r.latest.step if r.latest else None,
                "last_successful_evaluation_at": r.last_successful_evaluation_at,
            }
            for r in store.views.runs()
        ]

    @app.get(
        "/api/v1/runs/{run}/evaluations",
        response_model=CheckpointPage,
        summary="A run's checkpoints and their evaluations, newest first, paged",
        responses=NOT_FOUND,
    )
    def evaluations(
        run: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        state: str | None = Query(
            None, pattern="^(discovered|evaluating|evaluated|failed|skipped)$"
        ),
    ) -> dict[str, Any]:
        checked_run(run)
        states = (
            [state] if state else ["discovered", "evaluating", "evaluated", "failed", "skipped"]
        )
        rows = store.queue.checkpoints(
            run, states=states, newest_first=True, limit=limit, offset=offset
        )
        total = store.queue.count_checkpoints(run, states=states)
        return {
            "items": [_checkpoint(c, _shown(store, c)) for c in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
        }

    @app.get(
        "/api/v1/runs/{run}/evaluations/{checkpoint}",
        response_model=CheckpointDetail,
        summary="One checkpoint: metrics, per-query outcome summary, mining metadata, FN estimate",
        responses=NOT_FOUND,
    )
    def evaluation(run: str, checkpoint: str, per_query: bool = False) -> dict[str, Any]:
        checked_run(run)
        c = store.queue.checkpoint(run, checkpoint)
        if c is None:
            raise HTTPException(
                status_code=404, detail=f"run {run!r} has no checkpoint {checkpoint!r}"
            )
        details = []
        for e in _shown(store, c):
            d = _evaluation(e)
            d["counts"] = e.counts
            d["timings_seconds"] = e.timings
            if e.status == "done":
                outcomes = store.results.outcomes(e.id)
                ks = sorted({k for by_k in e.metrics.values() for k in by_k})
                d["outcome_summary"] = outcome_summary(outcomes, ks)
                d["per_query"] = outcomes if per_query else None
            details.append(d)
        doc = _checkpoint(c, [])
        est = store.results.fn_estimate(c.id)
        failure = None if est is not None else store.results.fn_audit_failure(c.id)
        mining = store.queue.mining_content(c.mining_fingerprint) if c.mining_fingerprint else None
        doc.update(
            path=c.path,
            mining=mining,
            mining_error=c.mining_error,
            evaluations=details,
            history=[_evaluation(e) for e in store.results.evaluations(c.id)],
            false_negatives=(
                None
                if est is None
                else {
                    **{k: getattr(est, k) for k in FalseNegatives.model_fields if k != "buckets"},
                    "buckets": [b.__dict__ for b in est.buckets],
                }
            ),
            false_negative_audit_failure=None if failure is None else asdict(failure),
        )
        return doc

    @app.get(
        "/api/v1/alerts",
        response_model=AlertPage,
        summary="Alerts with their evidence and delivery state, newest first, paged",
    )
    def alerts(
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        status: str | None = Query(None, pattern="^(firing|resolved)$"),
    ) -> dict[str, Any]:
        rows = store.ledger.alerts(status=status, limit=limit, offset=offset)
        total = store.ledger.count_alerts(status=status)
        return {
            "alerts": [_alert_item(store, r) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
        }

    @app.get(
        "/api/v1/alerts/{alert_id}",
        response_model=AlertItem,
        summary="One alert: its evidence and the delivery of each notification",
        responses=NOT_FOUND,
    )
    def alert(alert_id: str) -> dict[str, Any]:
        record = store.ledger.alert(alert_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no alert {alert_id!r}")
        return _alert_item(store, record)

    from recallwatch.web import mount  # the web layer reads this module's helpers

    mount(app, store, web)
    return app


# -- metrics ---------------------------------------------------------------------------------


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
        with scrape(names, scraper):  # which checkpoint this scraper is shown (export_cursor)
            return list(source.collect())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("utf-8", errors="replace"))
        scraper = query.get("scraper", [""])[0]
        metrics = await run_in_threadpool(self._collect, query.get("name[]"), scraper)
        await make_asgi_app(_Collected(metrics))(scope, receive, send)


# -- serving -------------------------------------------------------------------------------

#: How often the idle server wakes (uvicorn's own loop wakes every 0.1 s): it refreshes the
#: ``Date`` header and notices a stop. Ten wake-ups a second were most of the idle daemon's CPU.
TICK_SECONDS = 1.0


class _Server(uvicorn.Server):
    """uvicorn's server, waking once every ``TICK_SECONDS`` instead of ten times a second."""

    async def main_loop(self) -> None:
        # ``on_tick(0)`` refreshes the Date header (uvicorn does so when counter % 10 == 0) and
        # says whether to exit.
        while not await self.on_tick(0):
            await asyncio.sleep(TICK_SECONDS)


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
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
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
        self._server.should_exit = True
        self._thread.join(timeout)
        self.socket.close()
