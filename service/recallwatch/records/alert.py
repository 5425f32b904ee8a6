"""The alert record: what fired, on which run and checkpoint, and the evidence to act on.

An alert is identified for deduplication by its **key** — (rule, run, dataset, k, baseline) — and
each firing episode of a key has a stable **id** derived from the key, the checkpoint (or time)
that opened it and the key's episode number, so a re-computation after a crash gives the same id
and a re-opened key gets a new one. Every notification about an
alert (firing, repeat, resolved) is a **message** with an id of its own, stable across retries:
the ``webhook-id`` of the Standard Webhooks signature and the outbox row both use it.

The state machine of one key (fire, repeat, resolve) lives in ``alerting.episodes``; each rule
names its alerts (``AlertRule.alertname``).

Everything here is plain data with ``as_dict``/``from_dict`` (JSON), so an alert can be stored in
the outbox, served by the API, and rendered by every channel from the same record; it sits below
the store, the channels and the rules that all use it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from recallwatch.stats import Interval

__all__ = [
    "Alert",
    "AlertKey",
    "BaselineRef",
    "Evidence",
    "FnSnapshot",
    "LostQueryRef",
    "MetricChange",
    "MiningKeyChange",
    "Resolution",
    "alert_id",
    "iso",
    "message_id",
]

Status = Literal["firing", "resolved"]
#: What a notification says about its alert. ``refresh`` is an Alertmanager re-send of a firing
#: alert that keeps its ``endsAt`` ahead (rendered as a repeat, outbox event ``refresh``).
Event = Literal["firing", "repeat", "resolved", "test", "refresh"]


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds (``2026-11-27T01:02:03.456Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertKey:
    """What alerts are deduplicated on: one open episode per key."""

    rule: str
    run: str
    dataset: str | None = None
    k: int | None = None
    #: The baseline checkpoint's name (regression rules).
    baseline: str | None = None

    def as_string(self) -> str:
        """A canonical string of the key (stored, and hashed into ids)."""
        parts = [
            f"rule={self.rule}",
            f"run={self.run}",
            f"dataset={self.dataset or ''}",
            f"k={'' if self.k is None else self.k}",
            f"baseline={self.baseline or ''}",
        ]
        return ";".join(parts)


def alert_id(key: AlertKey, opened_by: str, episode: int = 0) -> str:
    """The stable id of the ``episode``-th episode of ``key``, opened by ``opened_by``."""
    # The episode number makes a re-opened key (even by the same checkpoint) a new alert with new
    # message ids; the first episode keeps the id it always had.
    seed = f"{key.as_string()}|{opened_by}" + (f"|{episode}" if episode else "")
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"al_{digest[:24]}"


def message_id(alert: str, event: Event, sequence: int = 0) -> str:
    """The id of one notification about an alert (the ``webhook-id``), stable across retries."""
    digest = hashlib.sha256(f"{alert}|{event}|{sequence}".encode()).hexdigest()
    return f"msg_{digest[:24]}"


# -- evidence -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricChange:
    """A metric at k before -> after with intervals, the paired test and its thresholds."""

    metric: str
    k: int
    dataset: str
    before: Interval
    after: Interval
    difference: Interval
    p_value: float
    alpha: float
    min_drop: float
    queries: int
    permutations: int
    #: The variance the test assumed (the level test's checkpoint-to-checkpoint SD, its sources
    #: and the standard error's parts); None for a query-only test.
    checkpoint_variance: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        """``recall@10``."""
        return f"{self.metric}@{self.k}"


@dataclass(frozen=True)
class BaselineRef:
    """The checkpoint an alert compares with."""

    checkpoint: str
    step: int | None
    #: previous_mining / same_mining / pinned.
    kind: str
    #: best / last / pinned.
    policy: str
    mining_fingerprint: str | None = None


@dataclass(frozen=True)
class MiningKeyChange:
    """One changed key of the mining metadata."""

    key: str
    before: Any
    after: Any
    change: str


@dataclass(frozen=True)
class FnSnapshot:
    """A false-negative estimate of a mined set (rate with its interval, and who judged)."""

    estimate: float
    lower: float
    upper: float
    oracle: str
    sample_size: int
    amplification: float | None = None


@dataclass(frozen=True)
class LostQueryRef:
    """A query that lost a relevant document from its top k, with texts for people."""

    query_id: str
    query_text: str
    doc_id: str
    doc_title: str
    rank_before: int
    rank_after: int
    lost: int


@dataclass(frozen=True)
class Evidence:
    """Everything an alert carries to act on; parts a rule does not produce stay empty."""

    #: mining_change (after a mining change) / same_mining (not caused by mining) / None.
    regression_kind: str | None = None
    metric: MetricChange | None = None
    baseline: BaselineRef | None = None
    mining_diff: tuple[MiningKeyChange, ...] = ()
    fn_before: FnSnapshot | None = None
    fn_after: FnSnapshot | None = None
    lost_count: int = 0
    lost_top: tuple[LostQueryRef, ...] = ()
    recommendation: str | None = None
    #: Rule-specific numbers (thresholds, streaks, ages ...).
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """What resolved an alert episode, in place of the evidence that fired it.

    ``checkpoint`` (and its ``step``) decided it, ``summary`` and ``description`` say why in
    words; for a regression, ``metric`` is that checkpoint's metric against the *same* baseline as
    the firing evidence, with the paired test that says it is no longer regressed, and
    ``criterion`` the rule that test was held to (the hysteresis of ``resolve_alpha``).
    """

    summary: str
    description: str
    checkpoint: str | None = None
    step: int | None = None
    metric: MetricChange | None = None
    #: E.g. "drop < min_drop / 2 or p > resolve_alpha (0.2)".
    criterion: str | None = None


@dataclass(frozen=True)
class Alert:
    """One alert episode as every channel renders it."""

    id: str
    key: AlertKey
    rule_type: str
    alertname: str
    severity: str
    status: Status
    summary: str
    description: str
    run: str
    checkpoint: str | None
    step: int | None
    started_at: float
    resolved_at: float | None = None
    evidence: Evidence = field(default_factory=Evidence)
    links: Mapping[str, str] = field(default_factory=dict)
    runbook_url: str | None = None
    #: What resolved it (resolved alerts): the firing ``evidence`` stays for reference.
    resolution: Resolution | None = None

    def resolved(
        self,
        at: float,
        *,
        checkpoint: str | None,
        step: int | None,
        resolution: Resolution | None = None,
    ) -> Alert:
        """The same alert, resolved at ``at`` by ``checkpoint``.

        With a ``resolution``, the summary and description are the resolution's (what resolved
        it), not the firing ones; without, the firing summary is kept, marked resolved.
        """
        if resolution is None:
            resolution = Resolution(
                summary=self.summary,
                description=self.description,
                checkpoint=checkpoint,
                step=step if checkpoint else None,
            )
        return Alert(
            **{
                **{f: getattr(self, f) for f in self.__dataclass_fields__},
                "status": "resolved",
                "resolved_at": at,
                "summary": f"RESOLVED: {resolution.summary}",
                "description": resolution.description,
                "checkpoint": checkpoint or self.checkpoint,
                "step": step if checkpoint else self.step,
                "resolution": resolution,
            }
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (the ``data`` of the webhook body)."""
        doc = asdict(self)
        doc["key"] = asdict(self.key)
        doc["started_at"] = iso(self.started_at)
        doc["resolved_at"] = None if self.resolved_at is None else iso(self.resolved_at)
        doc["evidence"]["mining_diff"] = [asdict(c) for c in self.evidence.mining_diff]
        doc["evidence"]["lost_top"] = [asdict(q) for q in self.evidence.lost_top]
        doc["evidence"]["details"] = dict(self.evidence.details)
        doc["links"] = dict(self.links)
        return _finite(doc)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Alert:
        """Inverse of ``as_dict``."""
        ev = dict(doc.get("evidence") or {})
        evidence = Evidence(
            regression_kind=ev.get("regression_kind"),
            metric=_metric_change(ev.get("metric")),
            baseline=None if ev.get("baseline") is None else BaselineRef(**ev["baseline"]),
            mining_diff=tuple(MiningKeyChange(**c) for c in ev.get("mining_diff", ())),
            fn_before=None if ev.get("fn_before") is None else FnSnapshot(**ev["fn_before"]),
            fn_after=None if ev.get("fn_after") is None else FnSnapshot(**ev["fn_after"]),
            lost_count=int(ev.get("lost_count", 0)),
            lost_top=tuple(LostQueryRef(**q) for q in ev.get("lost_top", ())),
            recommendation=ev.get("recommendation"),
            details=dict(ev.get("details") or {}),
        )
        return cls(
            id=doc["id"],
            key=AlertKey(**doc["key"]),
            rule_type=doc["rule_type"],
            alertname=doc["alertname"],
            severity=doc["severity"],
            status=doc["status"],
            summary=doc["summary"],
            description=doc["description"],
            run=doc["run"],
            checkpoint=doc.get("checkpoint"),
            step=doc.get("step"),
            started_at=_parse_iso(doc["started_at"]),
            resolved_at=None if doc.get("resolved_at") is None else _parse_iso(doc["resolved_at"]),
            evidence=evidence,
            links=dict(doc.get("links") or {}),
            runbook_url=doc.get("runbook_url"),
            resolution=_resolution(doc.get("resolution")),
        )


def _metric_change(doc: Mapping[str, Any] | None) -> MetricChange | None:
    if doc is None:
        return None
    return MetricChange(
        **{
            **doc,
            "before": Interval(**doc["before"]),
            "after": Interval(**doc["after"]),
            "difference": Interval(**doc["difference"]),
            "p_value": _num(doc["p_value"]),
        }
    )


def _resolution(doc: Mapping[str, Any] | None) -> Resolution | None:
    if doc is None:
        return None
    return Resolution(**{**doc, "metric": _metric_change(doc.get("metric"))})


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _parse_iso(value: str | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
