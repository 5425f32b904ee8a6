"""``/runs/{run}/checkpoints/{checkpoint}``: metrics per k with intervals, lost and gained queries;
``.../false-negatives``: the FN audit of the mined set the checkpoint trained on."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from recallwatch.views.checkpoints import checkpoint_of, false_negatives
from recallwatch.views.comparison import checkpoint_view
from recallwatch.web.charts import fn_buckets_figure, fn_curve_figure
from recallwatch.web.context import Reader
from recallwatch.web.templates import render

__all__ = ["router"]

router = APIRouter()


def _missing(request: Request, run: str, name: str) -> HTMLResponse:
    what = f"checkpoint {name} of run {run}"
    return render(request, "missing.html", status_code=404, title="Not found", what=what)


@router.get("/runs/{run}/checkpoints/{checkpoint}", response_class=HTMLResponse)
def checkpoint_page(
    request: Request,
    run: str,
    checkpoint: str,
    web: Reader,
    k: int | None = Query(None, ge=1, le=100_000),
) -> HTMLResponse:
    """A checkpoint against its baseline."""
    detail = checkpoint_of(web.store, run, checkpoint, web.rescorer)
    if detail is None:
        return _missing(request, run, checkpoint)
    view = checkpoint_view(web.store, web.texts, web.settings.heldouts, detail, k=k)
    return render(request, "checkpoint.html", title=f"{run} / {checkpoint}", view=view)


@router.get("/runs/{run}/checkpoints/{checkpoint}/false-negatives", response_class=HTMLResponse)
def fn_audit_page(request: Request, run: str, checkpoint: str, web: Reader) -> HTMLResponse:
    """The false-negative audit of the mined set a checkpoint trained on."""
    c = web.store.queue.checkpoint(run, checkpoint)
    if c is None:
        return _missing(request, run, checkpoint)
    fn = false_negatives(web.store, c)
    est = fn.exported
    return render(
        request,
        "fn_audit.html",
        title=f"False negatives: {run} / {checkpoint}",
        checkpoint=c,
        estimate=est,
        own=fn.own is not None,
        failure=fn.failure,
        recommendation=fn.recommendation,
        options=fn.options,
        chart=fn_buckets_figure(est) if est is not None and est.buckets else None,
        people=fn.people,
        curve_chart=None if fn.curve is None else fn_curve_figure(fn.curve),
    )
