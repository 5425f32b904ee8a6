"""``recall_floor``: a metric at k below an absolute floor, on any held-out set."""

from __future__ import annotations

from recallwatch.alerting.rules.base import AlertRule, Decision, register
from recallwatch.config import RecallFloorRule
from recallwatch.records.alert import Alert, AlertKey, Evidence
from recallwatch.store import CheckpointRow

__all__ = ["RecallFloor", "below_floor"]


def below_floor(value: float, floor: float) -> bool:
    """A metric below its absolute floor."""
    return value < floor


@register
class RecallFloor(AlertRule[RecallFloorRule]):
    """A metric at k below an absolute floor: one alert key per held-out set."""

    type = "recall_floor"
    alertname = "RecallBelowFloor"

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """One decision per held-out set the checkpoint has the metric for."""
        rule = self.config
        out = []
        for ev in self.context.store.results.current_evaluations(row.id):
            value = ev.metrics.get(rule.metric, {}).get(rule.k)
            if value is None:
                continue
            key = AlertKey(rule.name, row.run, ev.dataset, rule.k)
            what = (
                f"{rule.metric}@{rule.k} on {ev.dataset} is {value:.4f}, "
                f"below the floor {rule.floor:g}"
            )

            def build(aid: str, what: str = what, key: AlertKey = key) -> Alert:
                details = {"floor": rule.floor, "metric": rule.metric, "k": rule.k}
                summary = f"{what} ({row.run}, {row.name})"
                return self.new_alert(aid, key, row, summary, what, Evidence(details=details))

            out.append(self.decision(key, below_floor(value, rule.floor), row.name, build, row))
        return out
