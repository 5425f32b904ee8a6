"""``/alerts``: alerts newest first; ``/alerts/{id}``: one alert's evidence and deliveries."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from recallwatch.views.alerts import alert, alerts
from recallwatch.web.context import Reader
from recallwatch.web.templates import render

__all__ = ["router"]

router = APIRouter()
PAGE = 50


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, web: Reader, offset: int = Query(0, ge=0, le=10_000_000)
) -> HTMLResponse:
    """Alerts, newest first, ``PAGE`` at a time."""
    page = alerts(web.store, status=None, limit=PAGE, offset=offset)
    return render(
        request,
        "alerts.html",
        title="Alerts",
        alerts=[a.record for a in page.items],
        total=page.total,
        offset=offset,
        page=PAGE,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: str, web: Reader) -> HTMLResponse:
    """One alert: summary, evidence (metric change, baseline, mining diff, lost queries, FN)."""
    view = alert(web.store, alert_id, web.rescorer)
    if view is None:
        return render(
            request, "missing.html", status_code=404, title="Not found", what=f"alert {alert_id}"
        )
    return render(
        request,
        "alert.html",
        title=view.record.alert.summary,
        record=view.record,
        alert=view.record.alert,
        doc=view.document,
        deliveries=view.deliveries,
        rescored=view.rescored,
    )
