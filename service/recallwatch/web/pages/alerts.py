"""``/alerts``: alerts newest first; ``/alerts/{id}``: one alert's evidence and deliveries."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

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
    total = web.store.ledger.count_alerts()
    return render(
        request,
        "alerts.html",
        title="Alerts",
        alerts=web.store.ledger.alerts(limit=PAGE, offset=offset),
        total=total,
        offset=offset,
        page=PAGE,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: str, web: Reader) -> HTMLResponse:
    """One alert: summary, evidence (metric change, baseline, mining diff, lost queries, FN)."""
    record = web.store.ledger.alert(alert_id)
    if record is None:
        return render(
            request, "missing.html", status_code=404, title="Not found", what=f"alert {alert_id}"
        )
    return render(
        request,
        "alert.html",
        title=record.alert.summary,
        record=record,
        alert=record.alert,
        doc=record.alert.as_dict(),
        deliveries=web.store.outbox.deliveries(alert_id),
    )
