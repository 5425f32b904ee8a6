"""The JSON API, ``/api/v1/...``: runs, their checkpoints and evaluations, alerts.

``router(store)`` is the FastAPI router ``server.create_app`` includes. Each route renders a view
(``recallwatch.views``, the same the web pages render as HTML) as JSON: typed responses (the
pydantic models below, published in the OpenAPI document), and the 404 of an unknown run,
checkpoint or alert declared on every path with a parameter.

A checkpoint is ``/api/v1/runs/{run}/checkpoints/{checkpoint}``, as on the pages; the older
``.../evaluations`` paths answer the same and stay as documented aliases (``ALIASES``).

Every listing is a page under ``items`` (with ``total``, ``limit``, ``offset``, ``next_offset``);
the alerts listing also answers its older key ``alerts`` (the same list, deprecated).

API times are Unix timestamps in seconds, like Prometheus'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from recallwatch.records.precision import ProbeVerdict
from recallwatch.store import (
    CheckpointRow,
    EarlyVerdict,
    EvaluationRow,
    FnEstimate,
    RunSummary,
    Store,
)
from recallwatch.views import checkpoints as checkpoint_views
from recallwatch.views.alerts import AlertView, alert, alerts
from recallwatch.views.checkpoints import (
    STATES,
    CheckpointItem,
    VerdictView,
    checkpoint_of,
    checkpoints,
)
from recallwatch.views.paging import Page
from recallwatch.views.rescored import RescoredEvaluation, Rescorer
from recallwatch.views.runs import run_names, runs

__all__ = ["ALIASES", "MAX_OFFSET", "NOT_FOUND", "outcome_summary", "router"]


# -- response models ------------------------------------------------------------------------------


class NotFound(BaseModel):
    """No run, checkpoint or alert of that name."""

    detail: str


#: The largest page offset: SQLite integers are 64-bit (a larger one was a 500, found by the
#: schema fuzzer); no store holds a billion checkpoints or alerts.
MAX_OFFSET = 1_000_000_000

#: The 404 answer of every path with a parameter, as the OpenAPI document declares it.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": NotFound}}


class ProbeShift(BaseModel):
    """The probe shift: the probe's queries ranked against a small sub-corpus (their relevant
    documents and documents spread over the corpus) in fp32 and in the candidate precision.
    Not the shift on the full held-out set."""

    queries: int
    documents: int
    k: int
    recall_fp32: float
    recall_candidate: float
    recall_shift: float
    ndcg_fp32: float
    ndcg_candidate: float
    ndcg_shift: float
    #: probe queries whose relevant documents in the top k changed
    flips: int
    #: probe queries whose top k changed at all
    reordered: int


class PrecisionReport(BaseModel):
    """What the encoder was asked for and used, and its parity probe (docs/daemon.md)."""

    #: auto, fp32, bf16 or fp16; null: not applicable
    requested: str | None
    #: the precision encoded in; null: not computed by recallwatch
    used: str | None
    #: passed, failed (the parity probe ran), not-run (taken as configured), not-applicable
    verdict: ProbeVerdict
    #: the reduced precision the probe tried
    candidate: str | None = None
    #: probe embeddings compared
    texts: int = 0
    min_cosine: float | None = None
    threshold: float | None = None
    #: null: not measured (``note`` says why)
    shift: ProbeShift | None = None
    note: str = ""


class Evaluation(BaseModel):
    """One evaluation of a checkpoint on one held-out set."""

    dataset: str
    encoder: str
    #: the encoder's numeric precision (fp32, bf16, fp16); null for precomputed embeddings.
    #: Regression rules compare only evaluations of the same precision.
    precision: str | None = None
    #: the parity probe's verdict and probe shift (null: stored before reports, or failed)
    precision_report: PrecisionReport | None = None
    #: the report in one line, as the checkpoint page shows it
    precision_summary: str | None = None
    config_hash: str
    status: str
    started_at: float
    finished_at: float
    duration_seconds: float
    #: metric -> k -> mean over the evaluated queries
    metrics: dict[str, dict[str, float]]
    reason: str | None = None
    message: str | None = None


class Rescored(BaseModel):
    """An evaluation's metrics re-scored from its stored rankings under the latest qrels overlay
    version of its held-out set (the stored ``metrics`` never change; docs/holes.md)."""

    version: int
    #: documents per query the stored rankings hold (0: none stored)
    depth: int
    #: metric -> k -> re-scored value; null where the stored rankings cannot say (see ``why``)
    metrics: dict[str, dict[str, float | None]]
    #: metric -> k -> why it has no re-scored value
    why: dict[str, dict[str, str]]


class EvaluationDetail(Evaluation):
    """An evaluation with its counts, stage timings and per-query outcomes."""

    counts: dict[str, int]
    timings_seconds: dict[str, float]
    outcome_summary: dict[str, Any] | None = None
    #: query id -> relevant doc id -> rank in the top max(k), 0 when not retrieved
    per_query: dict[str, dict[str, int]] | None = None
    #: the metrics re-scored under the latest qrels overlay version (null: the held-out set has
    #: no version)
    rescored: Rescored | None = None


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
    #: who judged: audit (the audit's oracles), review (people's labels on /review) or ppi
    #: (prediction-powered: a judge's labels corrected by people's; ``people`` has the trio)
    source: str = "audit"
    #: with source review: how many labels, of which relevant / not_relevant / unsure, reviewers
    human_labels: dict[str, Any] | None = None
    #: with source review: the SPRT over the labels (decision, labels, ...)
    sprt: dict[str, Any] | None = None

    #: where people labelled part of the sample: the judge-only, people-only and
    #: prediction-powered rates, which one the estimate uses, and the judge's agreement
    people: dict[str, Any] | None = None
    #: per filter family, the projected FN rate and share dropped at each threshold (in the
    #: checkpoint's own document only, not in listings)
    filter_curve: dict[str, Any] | None = None


class FalseNegativeHistoryItem(BaseModel):
    """One estimate a checkpoint had, in the order they were stored."""

    created_at: float
    source: str
    oracle: str
    sample_size: int
    estimate: float
    lower: float
    upper: float


class Checkpoint(BaseModel):
    """A checkpoint, its state, its current evaluations and its own FN estimate."""

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
    #: the checkpoint's own false-negative estimate of its mined set (null: not audited)
    false_negatives: FalseNegatives | None = None


class RegressionVerdict(BaseModel):
    """A recall-regression rule's decision on a checkpoint, for one held-out set, metric and k."""

    dataset: str
    metric: str
    k: int
    #: what it compared with: previous_mining, same_mining or pinned (``<kind>:<rule>`` when
    #: several rules make the same comparison)
    kind: str
    #: the checkpoint it compared with (null: none, or pruned since)
    baseline_checkpoint: str | None
    value: float
    baseline_value: float | None
    #: one-sided p-value of the paired test (null where the rule decided without one)
    p_value: float | None
    regressed: bool
    details: dict[str, Any]
    decided_at: float


class AuditFailure(BaseModel):
    """The latest failed false-negative audit of a checkpoint's mined set."""

    reason: str
    message: str
    failed_at: float


class EarlyWarning(BaseModel):
    """The early pass on one checkpoint and held-out set: its pooled metric@k, per query an
    upper bound on the exact one, against the previous checkpoint's exact value; completed by
    the exact pass (docs/alerting.md, "Early warning")."""

    run: str
    checkpoint: str
    step: int | None
    dataset: str
    metric: str
    k: int
    #: warning | quiet (exact pending), confirmed | cleared | passed | missed (exact done)
    state: str
    warned: bool
    upper_bound: float
    baseline: float
    p_value: float
    alpha: float
    min_drop: float
    pool_docs: int
    corpus_docs: int
    seconds: float
    created_at: float
    exact: float | None
    exact_p_value: float | None
    exact_regressed: bool | None
    resolved_at: float | None
    text: str


class EarlyPage(BaseModel):
    """Early verdicts, newest first."""

    items: list[EarlyWarning]


class CheckpointDetail(Checkpoint):
    """A checkpoint with its mining metadata, every evaluation in detail and FN estimate."""

    path: str
    mining: Any
    mining_error: str | None
    evaluations: list[EvaluationDetail]  # type: ignore[assignment]
    history: list[Evaluation]
    false_negatives: FalseNegatives | None
    false_negative_audit_failure: AuditFailure | None = None
    #: every estimate the checkpoint had, oldest first (review labels add one as they change)
    false_negative_history: list[FalseNegativeHistoryItem] = []
    #: whether any regression verdict says the checkpoint regressed (null: no verdict yet)
    regressed: bool | None = None
    regression_verdicts: list[RegressionVerdict] = []
    early_verdicts: list[EarlyWarning] = []


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
    """A page of alerts, newest first; follow ``next_offset`` until it is null."""

    items: list[AlertItem]
    #: the same list as ``items``, under its older key: deprecated, kept for existing clients
    alerts: list[AlertItem] = Field(deprecated=True)
    total: int
    limit: int
    offset: int
    next_offset: int | None


# -- JSON renderings of the views ------------------------------------------------------------


def _page(key: str, page: Page[Any], render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One page of a listing under ``key``, with where the next page starts (None: the last)."""
    return {
        key: [render(item) for item in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.next_offset,
    }


def _run(r: RunSummary) -> dict[str, Any]:
    return {
        "name": r.name,
        "directory": r.directory,
        "checkpoints": r.states,
        "latest_checkpoint": r.latest.name if r.latest else None,
        "latest_step": r.latest.step if r.latest else None,
        "last_successful_evaluation_at": r.last_successful_evaluation_at,
    }


def _evaluation(e: EvaluationRow) -> dict[str, Any]:
    report = e.report
    return {
        "dataset": e.dataset,
        "encoder": e.encoder,
        "precision": e.precision,
        "precision_report": None if report is None else report.as_json(),
        "precision_summary": None if report is None else report.describe(),
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


def _checkpoint_item(item: CheckpointItem) -> dict[str, Any]:
    return {
        **_checkpoint(item.checkpoint, item.evaluations),
        "false_negatives": _false_negatives(item.false_negatives),
    }


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


def _false_negatives(est: FnEstimate | None, *, curve: bool = False) -> dict[str, Any] | None:
    if est is None:
        return None
    human = est.details.get("human_labels")
    sprt = est.details.get("sprt")
    return {
        **{k: getattr(est, k) for k in _ESTIMATE_FIELDS},
        "buckets": [b.__dict__ for b in est.buckets],
        "human_labels": human if isinstance(human, dict) else None,
        "sprt": sprt if isinstance(sprt, dict) else None,
        "people": est.details.get("people"),
        "filter_curve": est.details.get("curve") if curve else None,
    }


_HISTORY_FIELDS = [k for k in FalseNegativeHistoryItem.model_fields if k != "created_at"]
_ESTIMATE_FIELDS = [
    k
    for k in FalseNegatives.model_fields
    if k not in ("buckets", "human_labels", "sprt", "people", "filter_curve")
]


def _rescored(r: RescoredEvaluation) -> dict[str, Any]:
    return {
        "version": r.version,
        "depth": r.depth,
        "metrics": {m: {str(k): v for k, v in by_k.items()} for m, by_k in r.metrics.items()},
        "why": {
            m: {str(k): r.why(m, k) for k, v in by_k.items() if v is None}
            for m, by_k in r.metrics.items()
            if any(v is None for v in by_k.values())
        },
    }


def _checkpoint_detail(
    view: checkpoint_views.CheckpointDetail, *, per_query: bool
) -> dict[str, Any]:
    details = []
    for e in view.evaluations:
        d = _evaluation(e)
        d["counts"] = e.counts
        d["timings_seconds"] = e.timings
        if e.status == "done":
            outcomes = view.outcomes[e.id]
            ks = sorted({k for by_k in e.metrics.values() for k in by_k})
            d["outcome_summary"] = outcome_summary(outcomes, ks)
            d["per_query"] = outcomes if per_query else None
            r = view.rescored.get(e.id)
            d["rescored"] = None if r is None else _rescored(r)
        details.append(d)
    c = view.checkpoint
    fn = view.false_negatives
    # The API names the latest failed audit only while the checkpoint has no estimate of its own.
    failure = None if fn.own is not None else fn.failure
    doc = _checkpoint(c, [])
    doc.update(
        path=c.path,
        mining=view.mining,
        mining_error=c.mining_error,
        evaluations=details,
        history=[_evaluation(e) for e in view.history],
        false_negatives=_false_negatives(fn.own, curve=True),
        false_negative_audit_failure=None if failure is None else asdict(failure),
        false_negative_history=[
            {
                "created_at": at,
                **{
                    k: getattr(e, k)
                    for k in FalseNegativeHistoryItem.model_fields
                    if k != "created_at"
                },
            }
            for at, e in fn.history
        ],
        regressed=view.regressed,
        regression_verdicts=[_verdict(v) for v in view.verdicts],
        early_verdicts=[_early(v) for v in view.early],
    )
    return doc


def _early(v: EarlyVerdict) -> dict[str, Any]:
    doc = {name: getattr(v, name) for name in EarlyWarning.model_fields if name != "text"}
    doc["text"] = v.text
    return doc


def _verdict(view: VerdictView) -> dict[str, Any]:
    v = view.verdict
    return {
        "dataset": v.dataset,
        "metric": v.metric,
        "k": v.k,
        "kind": v.kind,
        "baseline_checkpoint": view.baseline,
        "value": v.value,
        "baseline_value": v.baseline_value,
        "p_value": v.p_value,
        "regressed": v.regressed,
        "details": v.details,
        "decided_at": v.created_at,
    }


def _alert_item(view: AlertView) -> dict[str, Any]:
    record = view.record
    return {
        "id": record.alert.id,
        "rule": record.rule,
        "run": record.alert.run,
        "status": record.status,
        "opened_at": record.opened_at,
        "last_notified_at": record.last_notified_at,
        "resolved_at": record.resolved_at,
        "repeats": record.repeats,
        "alert": view.document,
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
            for m in view.deliveries
        ],
    }


# -- the routes ----------------------------------------------------------------------------------

#: A run's checkpoints and one checkpoint, by the noun of the pages, and the older paths that
#: answer the same (documented aliases, deprecated in the OpenAPI document).
CHECKPOINTS = "/api/v1/runs/{run}/checkpoints"
CHECKPOINT = "/api/v1/runs/{run}/checkpoints/{checkpoint}"
ALIASES = {
    CHECKPOINTS: "/api/v1/runs/{run}/evaluations",
    CHECKPOINT: "/api/v1/runs/{run}/evaluations/{checkpoint}",
}


def router(store: Store, rescorer: Rescorer | None = None) -> APIRouter:
    """The ``/api/v1`` routes over a store (with ``rescorer``: a checkpoint's evaluations are
    re-scored under the latest qrels overlay version too)."""
    api = APIRouter()

    def checked_run(run: str) -> None:
        if run not in run_names(store):
            raise HTTPException(status_code=404, detail=f"no run named {run!r}")

    # Route names make the OpenAPI operation ids: kept as they were before the functions that
    # build the views took the short names.
    @api.get("/api/v1/runs", response_model=list[Run], summary="The watched runs", name="runs")
    def list_runs() -> list[dict[str, Any]]:
        return [_run(r) for r in runs(store)]

    def list_checkpoints(
        run: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        state: str | None = Query(None, pattern=f"^({'|'.join(STATES)})$"),
    ) -> dict[str, Any]:
        checked_run(run)
        page = checkpoints(store, run, state=state, limit=limit, offset=offset)
        return _page("items", page, _checkpoint_item)

    def one_checkpoint(run: str, checkpoint: str, per_query: bool = False) -> dict[str, Any]:
        checked_run(run)
        view = checkpoint_of(store, run, checkpoint, rescorer)
        if view is None:
            raise HTTPException(
                status_code=404, detail=f"run {run!r} has no checkpoint {checkpoint!r}"
            )
        return _checkpoint_detail(view, per_query=per_query)

    listing = "A run's checkpoints and their evaluations, newest first, paged"
    detail = "One checkpoint: metrics, per-query outcome summary, mining metadata, FN estimate"
    for path, endpoint, names, model, summary in (
        (CHECKPOINTS, list_checkpoints, ("checkpoints", "evaluations"), CheckpointPage, listing),
        (CHECKPOINT, one_checkpoint, ("checkpoint", "evaluation"), CheckpointDetail, detail),
    ):
        for route, name, alias in ((path, names[0], False), (ALIASES[path], names[1], True)):
            api.add_api_route(
                route,
                endpoint,
                name=name,
                methods=["GET"],
                response_model=model,
                summary=f"{summary} (alias of {path})" if alias else summary,
                responses=NOT_FOUND,
                deprecated=alias or None,
            )

    @api.get(
        "/api/v1/alerts",
        response_model=AlertPage,
        summary="Alerts with their evidence and delivery state, newest first, paged",
        name="alerts",
    )
    def list_alerts(
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        status: str | None = Query(None, pattern="^(firing|resolved)$"),
    ) -> dict[str, Any]:
        doc = _page("items", alerts(store, status=status, limit=limit, offset=offset), _alert_item)
        return {**doc, "alerts": doc["items"]}  # the deprecated key of the same list

    @api.get(
        "/api/v1/early",
        response_model=EarlyPage,
        summary="Early verdicts (pooled upper bound before the exact pass), newest first",
        name="early_verdicts",
    )
    def list_early(
        limit: int = Query(50, ge=1, le=500), run: str | None = Query(None)
    ) -> dict[str, Any]:
        return {"items": [_early(v) for v in store.early.recent(limit, run=run)]}

    @api.get(
        "/api/v1/alerts/{alert_id}",
        response_model=AlertItem,
        summary="One alert: its evidence and the delivery of each notification",
        responses=NOT_FOUND,
        name="alert",
    )
    def one_alert(alert_id: str) -> dict[str, Any]:
        view = alert(store, alert_id)
        if view is None:
            raise HTTPException(status_code=404, detail=f"no alert {alert_id!r}")
        return _alert_item(view)

    return api
