"""The JSON API, ``/api/v1/...``: runs, their checkpoints and evaluations, alerts.

``router(store)`` is the FastAPI router ``server.create_app`` includes: typed responses (the
pydantic models below, published in the OpenAPI document) built from the store's rows, and the
404 of an unknown run, checkpoint or alert declared on every path with a parameter.

API times are Unix timestamps in seconds, like Prometheus'.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from recallwatch.store import AlertRecord, CheckpointRow, EvaluationRow, Store

__all__ = ["MAX_OFFSET", "NOT_FOUND", "outcome_summary", "router"]


# -- response models ------------------------------------------------------------------------------


class NotFound(BaseModel):
    """No run, checkpoint or alert of that name."""

    detail: str


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


def _page(key: str, items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """One page of a listing under ``key``, with where the next page starts (None: the last)."""
    return {
        key: items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }


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


# -- the routes ----------------------------------------------------------------------------------


def router(store: Store) -> APIRouter:
    """The ``/api/v1`` routes over a store."""
    api = APIRouter()

    def checked_run(run: str) -> None:
        if run not in {r.name for r in store.views.runs()}:
            raise HTTPException(status_code=404, detail=f"no run named {run!r}")

    @api.get("/api/v1/runs", response_model=list[Run], summary="The watched runs")
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

    @api.get(
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
        return _page(
            "items", [_checkpoint(c, _shown(store, c)) for c in rows], total, limit, offset
        )

    @api.get(
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

    @api.get(
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
        return _page("alerts", [_alert_item(store, r) for r in rows], total, limit, offset)

    @api.get(
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

    return api
