"""``no_recent_evaluation``: no newly evaluated checkpoint of a run for ``after_seconds``.

A time-based rule: it decides on the engine's periodic tick, not after checkpoints. A run with
no evaluation yet counts from when this process started.
"""

from __future__ import annotations

from recallwatch.alerting.rules.base import AlertRule, Decision, register
from recallwatch.config import NoRecentEvaluationRule
from recallwatch.records.alert import Alert, AlertKey, Evidence

__all__ = ["NoRecentEvaluation", "evaluation_stale"]


def evaluation_stale(
    last_evaluated_at: float | None, since: float, now: float, after_seconds: float
) -> bool:
    """No newly evaluated checkpoint for ``after_seconds`` (counted from ``since`` if never)."""
    reference = since if last_evaluated_at is None else last_evaluated_at
    return now - reference > after_seconds


@register
class NoRecentEvaluation(AlertRule[NoRecentEvaluationRule]):
    """No newly evaluated checkpoint for ``after_seconds``."""

    type = "no_recent_evaluation"
    alertname = "RecallwatchNoRecentEvaluation"

    def decide_periodic(self, run: str, now: float) -> list[Decision]:
        """One decision per run: stale or not, from its last finished evaluation."""
        started_at = self.context.started_at
        last = self.context.store.views.last_success_by_run().get(run)
        key = AlertKey(self.config.name, run)
        reference = started_at if last is None else last
        stale = evaluation_stale(last, started_at, now, self.config.after_seconds)
        hours = (now - reference) / 3600
        what = f"no checkpoint of run {run} was evaluated for {hours:.1f} h"

        def build(aid: str) -> Alert:
            details = {"after_seconds": self.config.after_seconds, "last_evaluated_at": last}
            return self.new_alert(aid, key, None, what, what, Evidence(details=details), run=run)

        return [self.decision(key, stale, f"since:{reference:.3f}", build)]
