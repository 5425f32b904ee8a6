"""Slack incoming-webhook messages in Block Kit, kept within Slack's limits.

Limits applied (Slack's Block Kit reference): at most 50 blocks per message; a section's text at
most 3,000 characters; at most 10 section fields of at most 2,000 characters each; a header at
most 150 characters (plain text). Anything longer is cut and the message says so explicitly —
"… 470 more keys (truncated; the full evidence is in the API)" — never silently. The top-level
``text`` is the plain fallback Slack shows in notifications and where blocks cannot be rendered.

User-supplied strings (query texts, titles, mining values) are escaped for mrkdwn (``&``, ``<``,
``>``) so they cannot inject links or mentions.

A resolved alert says what resolved it (``Alert.resolution``): the checkpoint, its metric against
the same baseline and the test that says it recovered; the firing evidence (the old drop, lost
queries, mining diff, recommendation) is not repeated.
"""

from __future__ import annotations

import json
from typing import Any

from recallwatch.records.alert import Alert, Evidence, FnSnapshot, MetricChange

__all__ = [
    "MAX_BLOCKS",
    "MAX_FIELDS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "check_limits",
    "escape",
    "fallback_text",
    "slack_message",
]

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
#: The fallback ``text``: Slack accepts far more, but a notification preview needs no more.
MAX_FALLBACK_TEXT = 3_000
_MORE = "(truncated; the full evidence is in the API)"
#: One listed item (a mining key, a lost query): long values are cut so that others still fit.
MAX_LINE = 500


def escape(text: str) -> str:
    """Escape mrkdwn control characters of untrusted text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    notice = f"… {_MORE}"
    return text[: max(0, limit - len(notice))].rstrip() + notice


def _lines_within(head: str, lines: list[str], limit: int, what: str) -> str:
    """``head`` and as many whole lines as fit in ``limit``, then how many were left out."""
    text = head
    for i, line in enumerate(lines):
        line = _clip(line, MAX_LINE)
        left_after = len(lines) - i - 1
        reserve = len(f"\n… {left_after} more {what} {_MORE}") if left_after else 0
        if len(text) + 1 + len(line) + reserve > limit:
            return _clip(f"{text}\n… {len(lines) - i} more {what} {_MORE}", limit)
        text = f"{text}\n{line}"
    return text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_TEXT)}}


def _value(v: Any) -> str:
    return "∅" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.1%}"


def _metric_rows(m: MetricChange, alpha_name: str = "α") -> list[tuple[str, str]]:
    return [
        (
            f"{m.label} ({m.dataset})",
            f"{m.before.estimate:.4f} [{m.before.lower:.4f}, {m.before.upper:.4f}] → "
            f"{m.after.estimate:.4f} [{m.after.lower:.4f}, {m.after.upper:.4f}]",
        ),
        (
            "Change",
            f"{m.difference.estimate:+.4f} "
            f"[{m.difference.lower:+.4f}, {m.difference.upper:+.4f}], "
            f"p = {m.p_value:.2g} ({alpha_name} = {m.alpha:g}, {m.queries} queries)",
        ),
    ]


def _fields(alert: Alert) -> list[dict[str, str]]:
    ev = alert.evidence
    resolution = alert.resolution if alert.status == "resolved" else None
    rows: list[tuple[str, str]] = [("Run", alert.run)]
    if alert.checkpoint:
        step = f" (step {alert.step})" if alert.step is not None else ""
        what = "Resolved by" if resolution is not None else "Checkpoint"
        rows.append((what, f"{alert.checkpoint}{step}"))
    if ev.baseline is not None:
        step = f" (step {ev.baseline.step})" if ev.baseline.step is not None else ""
        rows.append(("Baseline", f"{ev.baseline.checkpoint}{step}, {ev.baseline.policy}"))
    if resolution is not None:
        if resolution.metric is not None:
            rows += _metric_rows(resolution.metric, "resolve α")
        if resolution.criterion:
            rows.append(("Resolves when", f"not ({resolution.criterion})"))
    else:
        if ev.metric is not None:
            rows += _metric_rows(ev.metric)
        if ev.fn_before is not None or ev.fn_after is not None:
            rows.append(("FN rate", _fn_text(ev)))
    if ev.regression_kind:
        rows.append(("Kind", _kind_text(ev.regression_kind)))
    rows.append(("Severity", alert.severity))
    return [
        {"type": "mrkdwn", "text": _clip(f"*{escape(k)}*\n{escape(v)}", MAX_FIELD_TEXT)}
        for k, v in rows[:MAX_FIELDS]
    ]


def _kind_text(kind: str) -> str:
    return {
        "mining_change": "after a mining change",
        "same_mining": "not caused by mining (same mining config)",
        "pinned": "against the pinned baseline",
    }.get(kind, kind)


def _fn_one(fn: FnSnapshot) -> str:
    interval = f"{_pct(fn.estimate)} [{_pct(fn.lower)}, {_pct(fn.upper)}]"
    return f"{interval} ({fn.oracle}, n={fn.sample_size})"


def _fn_text(ev: Evidence) -> str:
    before = _fn_one(ev.fn_before) if ev.fn_before is not None else "unknown"
    after = _fn_one(ev.fn_after) if ev.fn_after is not None else "unknown"
    return f"{before} → {after}"


def slack_message(alert: Alert) -> dict[str, Any]:
    """The Slack incoming-webhook payload (``text`` fallback and ``blocks``) of an alert."""
    ev = alert.evidence
    if alert.status == "resolved" and alert.resolution is not None:
        # What resolved it is in the fields; the firing evidence is not repeated.
        ev = Evidence(regression_kind=ev.regression_kind, baseline=ev.baseline)
    icon = ":white_check_mark:" if alert.status == "resolved" else ":rotating_light:"
    title = ("Resolved: " if alert.status == "resolved" else "") + alert.alertname
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(f"{title} · {alert.run}", MAX_HEADER_TEXT),
            },
        },
        _section(f"{icon} *{escape(alert.summary)}*\n{escape(alert.description)}"),
        {"type": "section", "fields": _fields(alert)},
    ]
    if ev.mining_diff:
        lines = [
            f"• `{escape(c.key)}`: {escape(_value(c.before))} → {escape(_value(c.after))}"
            for c in ev.mining_diff
        ]
        head = f"*Mining change* ({len(lines)} key{'s' if len(lines) != 1 else ''})"
        blocks.append(_section(_lines_within(head, lines, MAX_SECTION_TEXT, "keys")))
    if ev.lost_count:
        k = ev.metric.k if ev.metric is not None else None
        head = (
            f"*Lost queries*: {ev.lost_count} quer{'ies' if ev.lost_count != 1 else 'y'} lost a "
            f"relevant document from the top {k if k is not None else 'k'}"
        )
        if ev.lost_top:
            head += f"; the {len(ev.lost_top)} worst:"
        lines = [
            f"• _{escape(q.query_text or q.query_id)}_ (`{escape(q.query_id)}`) lost "
            f"“{escape(q.doc_title or q.doc_id)}” (`{escape(q.doc_id)}`): rank {q.rank_before} → "
            f"{q.rank_after if q.rank_after else 'not retrieved'}"
            for q in ev.lost_top
        ]
        blocks.append(_section(_lines_within(head, lines, MAX_SECTION_TEXT, "queries")))
    if ev.recommendation:
        blocks.append(_section(f"*Recommendation*: {escape(ev.recommendation)}"))
    if ev.details:
        lines = [f"• {escape(str(k))}: {escape(_value(v))}" for k, v in ev.details.items()]
        blocks.append(_section(_lines_within("*Details*", lines, MAX_SECTION_TEXT, "details")))
    links = [f"<{url}|{escape(name.capitalize())}>" for name, url in alert.links.items()]
    if alert.runbook_url:
        links.append(f"<{alert.runbook_url}|Runbook>")
    context = [f"alert `{alert.id}`", f"rule `{escape(alert.key.rule)}`"]
    if links:
        blocks.append(_section(" · ".join(links)))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _clip(t, MAX_SECTION_TEXT)}
                for t in context[:MAX_CONTEXT_ELEMENTS]
            ],
        }
    )
    if len(blocks) > MAX_BLOCKS:
        dropped = len(blocks) - (MAX_BLOCKS - 1)
        blocks = [
            *blocks[: MAX_BLOCKS - 2],
            _section(f"… {dropped} more blocks {_MORE}"),
            blocks[-1],
        ]
    return {"text": _clip(fallback_text(alert), MAX_FALLBACK_TEXT), "blocks": blocks}


def fallback_text(alert: Alert) -> str:
    """The plain-text rendering of an alert (notifications, clients without Block Kit)."""
    ev = alert.evidence
    parts = [f"[{alert.severity}] {alert.summary}"]
    if alert.status == "resolved" and alert.resolution is not None:
        m = alert.resolution.metric
        if m is not None:
            parts.append(
                f"{m.label}: {m.before.estimate:.4f} → {m.after.estimate:.4f} "
                f"(p = {m.p_value:.2g}, resolve α = {m.alpha:g})"
            )
        return escape(" — ".join(parts))
    if ev.metric is not None:
        m = ev.metric
        parts.append(
            f"{m.label}: {m.before.estimate:.4f} → {m.after.estimate:.4f} (p = {m.p_value:.2g})"
        )
    if ev.lost_count:
        parts.append(f"{ev.lost_count} queries lost relevant documents")
    if ev.recommendation:
        parts.append(f"recommendation: {ev.recommendation}")
    return escape(" — ".join(parts))


def check_limits(payload: dict[str, Any]) -> list[str]:
    """Every way ``payload`` breaks the Block Kit limits recallwatch relies on (empty: none)."""
    problems: list[str] = []
    blocks = payload.get("blocks", [])
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        problems.append("no plain-text fallback")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        text = (block.get("text") or {}).get("text", "")
        if block["type"] == "header" and len(text) > MAX_HEADER_TEXT:
            problems.append(f"block {i}: header of {len(text)} characters")
        if block["type"] == "section":
            if len(text) > MAX_SECTION_TEXT:
                problems.append(f"block {i}: section text of {len(text)} characters")
            fields = block.get("fields", [])
            if len(fields) > MAX_FIELDS:
                problems.append(f"block {i}: {len(fields)} fields")
            problems += [
                f"block {i}: field of {len(f['text'])} characters"
                for f in fields
                if len(f["text"]) > MAX_FIELD_TEXT
            ]
            if not text and not fields:
                problems.append(f"block {i}: empty section")
        if block["type"] == "context" and len(block.get("elements", [])) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"block {i}: too many context elements")
    return problems
