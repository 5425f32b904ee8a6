"""``early_warning``: the early pass' warning, sent while the exact evaluation runs.

When the early pass before a checkpoint's exact evaluation warns (``daemon.early``: pooled
recall, an upper bound, significantly below the previous checkpoint's exact recall), the engine
asks this rule at once (``decide_early``): the alert ``RecallEarlyWarning`` fires with the text
"early: recall@10 <= 0.71 on a pool of N documents against 0.78 exact at checkpoint-2;
confirming with the exact evaluation…" and a link to the checkpoint's page. When the checkpoint
is decided after its exact evaluation (``decide``), the alert resolves with what the exact
evaluation made of it: cleared ("early warning for X cleared by the exact evaluation:
recall@10 0.78"), confirmed (the ``recall_regression`` rule's alert then carries the evidence, and
says "early warning at <time> confirmed"), or neither when the exact evaluation failed. Slack and
webhooks get the resolve as a follow-up message; Alertmanager gets ``endsAt``.

One alert key per checkpoint's comparison: (rule, run, held-out set, k, the previous checkpoint
compared with); a checkpoint's warning is sent once, even when the early verdict is decided again
(a restart during the exact evaluation: the stored verdict stands, ``EarlyPass.before``). A
backfill checkpoint's warning is recorded, not sent, like every decision of the engine.
"""

from __future__ import annotations

from recallwatch.alerting.early import (
    early_details,
    early_text,
    failed_text,
    followup_description,
    followup_text,
)
from recallwatch.alerting.rules.base import AlertRule, Decision, register
from recallwatch.config import EarlyWarningRule
from recallwatch.records.alert import Alert, AlertKey, Evidence, Resolution
from recallwatch.store import CheckpointRow, EarlyVerdict

__all__ = ["EarlyWarning"]


@register
class EarlyWarning(AlertRule[EarlyWarningRule]):
    """The early pass' warning: fired before the exact evaluation, resolved by it."""

    type = "early_warning"
    alertname = "RecallEarlyWarning"
    #: A failed exact evaluation ends the warning (neither confirmed nor cleared).
    decides_failed = True
    #: Each checkpoint answers for its own warning.
    follows_newest = False

    def key(self, verdict: EarlyVerdict) -> AlertKey:
        """The alert key of one early verdict."""
        return AlertKey(
            self.config.name,
            verdict.run,
            verdict.dataset,
            verdict.k,
            verdict.baseline_checkpoint or None,
        )

    def decide_early(self, row: CheckpointRow, verdict: EarlyVerdict) -> list[Decision]:
        """Fire on a warning whose exact evaluation is pending (once per checkpoint)."""
        if not verdict.warned or verdict.exact is not None:
            return []
        key = self.key(verdict)
        if any(
            r.alert.checkpoint == row.name and r.status == "resolved"
            for r in self.context.store.ledger.episodes(key.as_string())
        ):
            return []  # sent and resolved already: a decision repeated after the fact
        text = early_text(verdict)

        def build(aid: str) -> Alert:
            summary = (
                f"early warning: {verdict.metric}@{verdict.k} of {row.run} {row.name} "
                f"({verdict.dataset}) <= {verdict.upper_bound:.2f} against "
                f"{verdict.baseline:.2f} exact before"
            )
            evidence = Evidence(details={**early_details(verdict), "text": text})
            return self.new_alert(aid, key, row, summary, text, evidence)

        return [self.decision(key, True, row.name, build, row)]

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """Resolve the checkpoint's warnings the exact evaluation decided (or failed on)."""
        out = []
        for verdict in self.context.store.early.for_checkpoint(row.id):
            if not verdict.warned:
                continue
            if verdict.exact is not None:
                summary, description = followup_text(verdict), followup_description(verdict)
            elif row.state == "failed":
                summary = description = failed_text(verdict, row.state_reason)
            else:
                continue  # its exact evaluation has not finished (another evaluation key)
            resolution = Resolution(summary, description, checkpoint=row.name, step=row.step)
            key = self.key(verdict)
            out.append(self.decision(key, False, row.name, None, row, resolution=resolution))
        return out
