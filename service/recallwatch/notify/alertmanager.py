"""Alertmanager: recallwatch alerts as ``POST /api/v2/alerts`` bodies.

Each alert becomes one postable alert. Its **labels** identify it to Alertmanager (grouping,
routing, inhibition, silences) and stay bounded: ``alertname`` (CamelCase, e.g.
``RecallRegressionAfterMiningChange``), ``run``, ``severity``, ``rule``, plus ``dataset``, ``k`` and
``baseline`` where the rule has them — never a checkpoint or a query — and ``service`` =
``recallwatch`` but never ``source="prometheus"``: ``alertname``, ``run``, ``dataset`` and ``k``
are those the Prometheus rules give the same event (``dataset`` the held-out set's name, ``k`` as
text, as the exporter labels them), so ``deploy/alertmanager-inhibit.yml`` mutes the Prometheus
copy when both paths are on. Its **annotations** carry ``summary``, ``description`` (of a resolved
alert: what resolved it), ``runbook_url``, and the links and alert id.

Alertmanager forgets an alert whose ``endsAt`` passed, so while firing recallwatch re-sends it
(every ``resend_interval`` seconds) with ``endsAt`` = now + 4 x ``resend_interval``, as Prometheus
does; if recallwatch dies the alert ends by itself instead of firing forever. A resolved alert is
sent once more with ``endsAt`` = the resolution time.

The body is rendered when the alert is decided, but a firing alert's ``endsAt`` is recomputed per
attempt (``with_ends_at``): max(stored, attempt time + 4 x ``resend_interval``), so an alert
delivered after an outage, retries or a restart does not arrive already ended.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from recallwatch.records.alert import Alert, iso

__all__ = ["DEFAULT_RESEND_SECONDS", "alertmanager_body", "alertmanager_labels", "with_ends_at"]

DEFAULT_RESEND_SECONDS = 60.0
#: Where each alert's runbook section lives (one heading per ``alertname``) when none is set.
RUNBOOK_DOC = "docs/runbook.md"


def alertmanager_labels(alert: Alert) -> dict[str, str]:
    """The identifying labels of an alert in Alertmanager."""
    labels = {
        "alertname": alert.alertname,
        "run": alert.run,
        "severity": alert.severity,
        "rule": alert.key.rule,
        "service": "recallwatch",
    }
    if alert.key.dataset:
        labels["dataset"] = alert.key.dataset
    if alert.key.k is not None:
        labels["k"] = str(alert.key.k)
    if alert.key.baseline:
        labels["baseline"] = alert.key.baseline
    return labels


def alertmanager_body(alert: Alert, *, now: float, resend_interval: float) -> bytes:
    """The JSON array ``POST /api/v2/alerts`` takes, for one alert at time ``now``."""
    annotations = {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": alert.runbook_url or f"{RUNBOOK_DOC}#{alert.alertname.lower()}",
        "alert_id": alert.id,
    }
    if alert.checkpoint:
        annotations["checkpoint"] = alert.checkpoint
    annotations.update({f"{name}_url": url for name, url in alert.links.items()})
    ends = alert.resolved_at if alert.resolved_at is not None else now + 4 * resend_interval
    doc: dict[str, Any] = {
        "labels": alertmanager_labels(alert),
        "annotations": annotations,
        "startsAt": iso(alert.started_at),
        "endsAt": iso(ends),
    }
    if "alert" in alert.links:
        doc["generatorURL"] = alert.links["alert"]
    return _dump([doc])


def with_ends_at(body: bytes, *, now: float, resend_interval: float) -> bytes:
    """A stored firing body with ``endsAt`` moved to at least ``now`` + 4 x ``resend_interval``."""
    try:
        docs = json.loads(body)
    except ValueError:
        return body
    if not isinstance(docs, list):
        return body
    ends = now + 4 * resend_interval
    changed = False
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        stored = _timestamp(doc.get("endsAt"))
        if stored is None or stored < ends:
            doc["endsAt"] = iso(ends)
            changed = True
    return _dump(docs) if changed else body


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _dump(docs: list[Any]) -> bytes:
    return json.dumps(docs, ensure_ascii=False, separators=(",", ":")).encode()
