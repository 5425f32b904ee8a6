"""``evaluation_failing``: the last ``consecutive`` evaluations of a run failed."""

from __future__ import annotations

from collections.abc import Sequence

from recallwatch.alerting.rules.base import AlertRule, Decision, by_step, register
from recallwatch.config import EvaluationFailingRule
from recallwatch.records.alert import Alert, AlertKey, Evidence
from recallwatch.store import CheckpointRow

__all__ = ["EvaluationFailing", "failing_streak"]


def failing_streak(failed: Sequence[bool]) -> int:
    """How many of the latest evaluations (oldest first) failed in a row."""
    streak = 0
    for f in reversed(failed):
        if not f:
            break
        streak += 1
    return streak


@register
class EvaluationFailing(AlertRule[EvaluationFailingRule]):
    """``consecutive`` failed evaluations in a row, counted back from the run's newest checkpoint.

    It decides after failed checkpoints too, and a late older checkpoint keeps its own answer:
    the rule always speaks for the run's newest evaluated-or-failed checkpoint by itself.
    """

    type = "evaluation_failing"
    alertname = "RecallwatchEvaluationFailing"
    decides_failed = True
    follows_newest = False

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """One decision per run: the failing streak ending at its newest checkpoint."""
        rows = self.context.store.queue.checkpoints(row.run, states=["evaluated", "failed"])
        states = {r.id: r.state for r in rows}
        states[row.id] = row.state
        ordered = sorted([*(r for r in rows if r.id != row.id), row], key=by_step)
        streak = failing_streak([states[r.id] == "failed" for r in ordered])
        newest = ordered[-1]  # the newest checkpoint speaks for the run, whichever finished last
        key = AlertKey(self.config.name, newest.run)
        what = (
            f"the last {streak} evaluations of run {newest.run} failed "
            f"(latest: {newest.name}, reason {newest.state_reason or 'unknown'})"
        )

        def build(aid: str) -> Alert:
            details = {
                "consecutive": streak,
                "threshold": self.config.consecutive,
                "reason": newest.state_reason,
                "message": (newest.state_message or "")[:500],
            }
            return self.new_alert(aid, key, newest, what, what, Evidence(details=details))

        firing = streak >= self.config.consecutive
        return [self.decision(key, firing, newest.name, build, newest)]
