"""``/runs/{run}/checkpoints/{checkpoint}``: metrics per k with intervals, lost and gained queries;
``.../false-negatives``: the FN audit of the mined set the checkpoint trained on."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from recallwatch.alerting.evidence import recommendation
from recallwatch.web.charts import fn_buckets_figure
from recallwatch.web.context import Reader
from recallwatch.web.data import checkpoint_view
from recallwatch.web.templates import render

__all__ = ["router"]

router = APIRouter()


@router.get("/runs/{run}/checkpoints/{checkpoint}", response_class=HTMLResponse)
def checkpoint_page(
    request: Request,
    run: str,
    checkpoint: str,
    web: Reader,
    k: int | None = Query(None, ge=1, le=100_000),
) -> HTMLResponse:
    """A checkpoint against its baseline."""
    c = web.store.queue.checkpoint(run, checkpoint)
    if c is None:
        what = f"checkpoint {checkpoint} of run {run}"
        return render(request, "missing.html", status_code=404, title="Not found", what=what)
    view = checkpoint_view(web.store, web.texts, web.settings.heldouts, c, k=k)
    return render(request, "checkpoint.html", title=f"{run} / {checkpoint}", view=view)


@router.get("/runs/{run}/checkpoints/{checkpoint}/false-negatives", response_class=HTMLResponse)
def fn_audit_page(request: Request, run: str, checkpoint: str, web: Reader) -> HTMLResponse:
    """The false-negative audit of the mined set a checkpoint trained on."""
    c = web.store.queue.checkpoint(run, checkpoint)
    if c is None:
        what = f"checkpoint {checkpoint} of run {run}"
        return render(request, "missing.html", status_code=404, title="Not found", what=what)
    est = web.store.views.exported_fn_estimate(c)
    rec = est.details.get("recommendation") if est is not None else None
    return render(
        request,
        "fn_audit.html",
        title=f"False negatives: {run} / {checkpoint}",
        checkpoint=c,
        estimate=est,
        own=web.store.results.fn_estimate(c.id) is not None,
        failure=web.store.results.fn_audit_failure(c.id),
        recommendation=recommendation(est),
        options=(rec.get("options") or []) if isinstance(rec, dict) else [],
        chart=fn_buckets_figure(est) if est is not None and est.buckets else None,
    )
