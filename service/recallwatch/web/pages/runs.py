"""``/runs``: the watched runs; ``/runs/{run}``: a run's metrics against step."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from recallwatch.views.runs import run_history, run_names, runs
from recallwatch.web.charts import run_figure
from recallwatch.web.context import Reader
from recallwatch.web.templates import render

__all__ = ["router"]

router = APIRouter()


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, web: Reader) -> HTMLResponse:
    """Every run: checkpoints by state, latest evaluated checkpoint, last evaluation."""
    return render(request, "runs.html", title="Runs", runs=runs(web.store))


@router.get("/runs/{run}", response_class=HTMLResponse)
def run_page(request: Request, run: str, web: Reader) -> HTMLResponse:
    """A run: recall@k, nDCG@k and the FN rate against step, mining changes and alerts marked."""
    if run not in run_names(web.store):
        return render(
            request, "missing.html", status_code=404, title="Not found", what=f"run {run}"
        )
    history = run_history(web.store, run, web.rescorer)
    return render(
        request, "run.html", title=f"Run {run}", history=history, chart=run_figure(history)
    )
