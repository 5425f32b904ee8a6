"""The alerts: a page of them newest first (``/alerts``, ``/api/v1/alerts``) and one alert
(``/alerts/{id}``, ``/api/v1/alerts/{id}``), each with its evidence and its deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recallwatch.records.outbox import OutboxMessage
from recallwatch.store import AlertRecord, Store
from recallwatch.views.paging import Page
from recallwatch.views.rescored import RescoredChange, Rescorer

__all__ = ["AlertView", "alert", "alert_view", "alerts"]


@dataclass(frozen=True)
class AlertView:
    """An alert: its record (document and bookkeeping) and the delivery of each notification."""

    record: AlertRecord
    deliveries: list[OutboxMessage]
    #: The metric change re-scored under a qrels version newer than the stored evaluations
    #: (None: no version, not a regression, or not firing); the sent numbers never change.
    rescored: RescoredChange | None = None

    @property
    def document(self) -> dict[str, Any]:
        """The alert's document: the webhook schema's ``data`` (its evidence)."""
        return self.record.alert.as_dict()


def alert_view(store: Store, record: AlertRecord, rescorer: Rescorer | None = None) -> AlertView:
    """A stored alert with its deliveries (with ``rescorer``: its change re-scored too)."""
    return AlertView(record, store.outbox.deliveries(record.alert.id), _rescored(rescorer, record))


def _rescored(rescorer: Rescorer | None, record: AlertRecord) -> RescoredChange | None:
    a = record.alert
    m, base = a.evidence.metric, a.evidence.baseline
    # A resolved alert names the checkpoint that resolved it, not the one it was sent for.
    if rescorer is None or m is None or base is None or record.status != "firing":
        return None
    return rescorer.change(
        a.run, a.checkpoint, base.checkpoint, m.dataset, m.metric, m.k, sent_version=0
    )


def alerts(store: Store, *, status: str | None, limit: int, offset: int) -> Page[AlertView]:
    """A page of alerts (in a status), newest first."""
    records = store.ledger.alerts(status=status, limit=limit, offset=offset)
    total = store.ledger.count_alerts(status=status)
    return Page([alert_view(store, r) for r in records], total, limit, offset)


def alert(store: Store, alert_id: str, rescorer: Rescorer | None = None) -> AlertView | None:
    """One alert by id (None: no such alert)."""
    record = store.ledger.alert(alert_id)
    return None if record is None else alert_view(store, record, rescorer)
