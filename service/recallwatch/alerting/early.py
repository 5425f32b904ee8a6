"""The early warning's words: its alert, the follow-ups after the exact evaluation, and the note
a confirmed regression's alert carries (docs/alerting.md, "Early warning").

Pure functions of a stored early verdict (``store.EarlyVerdict``): the ``early_warning`` rule
(``rules.early_warning``) sends them, the ``recall_regression`` rule adds ``confirmed_note`` to
the evidence of the regression the exact evaluation confirms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recallwatch.records.alert import iso
from recallwatch.store import EarlyVerdict

__all__ = [
    "confirmed_note",
    "early_details",
    "early_text",
    "failed_text",
    "followup_description",
    "followup_text",
    "latest_confirmed",
]


def _label(v: EarlyVerdict) -> str:
    return f"{v.metric}@{v.k}"


def early_text(v: EarlyVerdict) -> str:
    """``early: recall@10 <= 0.71 on a pool of 2,000 documents against 0.78 exact at
    checkpoint-2; confirming with the exact evaluation…``"""
    return (
        f"early: {_label(v)} <= {v.upper_bound:.2f} on a pool of {v.pool_docs:,} documents "
        f"against {v.baseline:.2f} exact at {v.baseline_checkpoint or 'the previous checkpoint'}; "
        "confirming with the exact evaluation…"
    )


def followup_text(v: EarlyVerdict) -> str:
    """What the exact evaluation made of a warning: ``early warning for X cleared by
    the exact evaluation: recall@10 0.78`` (or ``confirmed``)."""
    outcome = "confirmed" if v.exact_regressed else "cleared"
    exact = "?" if v.exact is None else f"{v.exact:.2f}"
    return (
        f"early warning for {v.checkpoint} {outcome} by the exact evaluation: {_label(v)} {exact}"
    )


def followup_description(v: EarlyVerdict) -> str:
    """The follow-up in full: the exact test against the same baseline, and what comes next."""
    p = "?" if v.exact_p_value is None else f"{v.exact_p_value:.2g}"
    test = (
        f" (against {v.baseline:.2f} exact at {v.baseline_checkpoint}, p = {p}, "
        f"alpha = {v.alpha:g}, min_drop = {v.min_drop:g})."
    )
    if v.exact_regressed:
        return (
            followup_text(v) + test + " The regression rule's alert on the exact evaluation "
            "carries the evidence."
        )
    return followup_text(v) + test + " The pooled warning was not confirmed."


def failed_text(v: EarlyVerdict, reason: str | None) -> str:
    """A warning the exact evaluation could not confirm or clear: it failed."""
    return (
        f"early warning for {v.checkpoint} neither confirmed nor cleared: the exact "
        f"evaluation failed ({reason or 'unknown reason'})"
    )


def early_details(v: EarlyVerdict) -> dict[str, Any]:
    """The early verdict's numbers, for an alert's evidence details."""
    return {
        "metric": v.metric,
        "k": v.k,
        "dataset": v.dataset,
        "upper_bound": v.upper_bound,
        "baseline": v.baseline,
        "baseline_checkpoint": v.baseline_checkpoint,
        "p_value": v.p_value,
        "alpha": v.alpha,
        "min_drop": v.min_drop,
        "pool_docs": v.pool_docs,
        "corpus_docs": v.corpus_docs,
        "warned_at": iso(v.created_at),
    }


def latest_confirmed(verdicts: Sequence[EarlyVerdict], dataset: str) -> EarlyVerdict | None:
    """The newest early warning on ``dataset`` that the exact evaluation confirmed, if any."""
    confirmed = [v for v in verdicts if v.dataset == dataset and v.state == "confirmed"]
    return max(confirmed, key=lambda v: (v.created_at, v.id), default=None)


def confirmed_note(v: EarlyVerdict) -> str:
    """``early warning at 2026-12-06T07:45:09.000Z confirmed (early: recall@10 <= 0.71 …)``."""
    exact = "?" if v.exact is None else f"{v.exact:.2f}"
    return (
        f"early warning at {iso(v.created_at)} confirmed "
        f"({_label(v)} <= {v.upper_bound:.2f} on a pool of {v.pool_docs:,} documents, "
        f"exact {exact})"
    )
