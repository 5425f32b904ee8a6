"""From stored evaluations to alerts in the outbox: the daemon's decision step.

After each checkpoint is evaluated (or fails), ``Alerting.after_checkpoint`` asks every rule that
applies to its run for its decisions (``alerting.rules``: one plugin per rule type, found by the
rule's config ``type``), records the regression verdicts behind them (``store.ledger``), and turns
each decision's "firing or not" into a transition of its alert key (fire / repeat / resolve, see
``episodes.transition``). The alert's new state and one outbox message per channel are written
**in one transaction** before anything is sent, so a crash loses no decided notification; a
re-run of the same decision (a checkpoint re-queued by a crash) finds the same alert and message
ids and writes nothing twice. ``after_early`` decides the same way on an early warning, before
the checkpoint's exact evaluation (the ``early_warning`` rule). A checkpoint discovered long after
it was completed is backfill (``notifications.backfill_quiet_seconds``): what it decides is
recorded without its messages, so a fresh store over runs with history does not page people
again for what was already delivered.

Decisions are serialized (one lock): concurrent evaluations and the periodic tick could otherwise
both open the same key. ``tick`` runs periodically: the time-based rules
(``no_recent_evaluation``), repeat notifications of long-firing alerts, and the Alertmanager
re-sends that keep firing alerts alive there (``resend``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from recallwatch import failpoints
from recallwatch.alerting.episodes import EpisodeChanges, Episodes, OpenEpisode, transition
from recallwatch.alerting.evidence import EvidenceReader
from recallwatch.alerting.resend import AlertmanagerResends
from recallwatch.alerting.rules import AlertRule, Decision, RuleContext, by_step, rule_for
from recallwatch.config import Config
from recallwatch.heldout.texts import TextIndex
from recallwatch.logs import fields
from recallwatch.records.alert import alert_id
from recallwatch.store import CheckpointRow, EarlyVerdict, Store

__all__ = ["Alerting"]

log = logging.getLogger(__name__)


class Alerting:
    """Run the notification rules over the store and enqueue what they decide."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        #: Called after messages are enqueued (wakes the delivery workers).
        self.wake = wake
        self.started_at = clock()
        self._lock = threading.Lock()
        #: Alert transitions recorded but not sent, by reason (``backfill``), since the start:
        #: ``recallwatch_alerts_suppressed_total{reason}`` and ``/readyz``'s ``handled``.
        self.suppressed: dict[str, int] = {"backfill": 0}
        self.texts = TextIndex()
        #: The context rules read, one rule plugin per configured rule (in configuration order),
        #: the episodes' channels and the Alertmanager re-sends: all from one configuration.
        self.context, self.rules, self.episodes, self.resends = self._build(config)

    def _build(
        self, config: Config
    ) -> tuple[RuleContext, list[AlertRule[Any]], Episodes, AlertmanagerResends]:
        context = RuleContext(
            config,
            self.store,
            EvidenceReader(self.store, self.texts),
            clock=self.clock,
            started_at=self.started_at,
        )
        rules: list[AlertRule[Any]] = [rule_for(r, context) for r in config.notifications.rules]
        notifications = config.notifications
        channels = {c.name: c for c in notifications.channels}
        rules_by_name = {r.name: r for r in notifications.rules}
        episodes = Episodes(channels, rules_by_name, notifications.repeat_interval_seconds)
        return (
            context,
            rules,
            episodes,
            AlertmanagerResends(channels, rules_by_name, self.started_at),
        )

    def reconfigure(self, config: Config) -> None:
        """Decide with ``config``'s rules, thresholds and channels from the next decision on.

        A SIGHUP reload: everything is built first (a rule that cannot be built raises here and
        changes nothing), then swapped under the decision lock, so a decision sees either the
        old configuration or the new one, never a mix. Open alerts stay in the store; a rule
        removed stops deciding, and its open alerts stay open until a rule of that name decides
        again. When each Alertmanager channel was last re-sent to is kept.
        """
        built = self._build(config)
        with self._lock:
            built[3].keep_schedule(self.resends)
            self.config = config
            self.context, self.rules, self.episodes, self.resends = built

    # -- entry points ---------------------------------------------------------------------------

    def rules_for(self, run: str) -> list[AlertRule[Any]]:
        """The rules that apply to a run."""
        return [r for r in self.rules if r.applies_to(run)]

    def after_checkpoint(self, row: CheckpointRow) -> None:
        """Decide every rule for a checkpoint that was just evaluated (or failed)."""
        context, rules = self.context, self.rules_for(row.run)
        for rule in rules:
            # Outside the decision lock: reading a corpus must not hold up other decisions.
            rule.prepare(row)
        with self._lock:
            if self.context is not context:
                # Reconfigured since (a reload): decide entirely with the new rules.
                rules = self.rules_for(row.run)
                for rule in rules:
                    rule.prepare(row)
            self.context.begin_decision()
            decided = [(rule, self._decide(rule, row)) for rule in rules]
            newest = self._newest_evaluated(row)
            if row.state == "evaluated" and newest is not None and newest.id != row.id:
                # An older checkpoint finished late (concurrency, a re-queued failure, a
                # re-evaluation): its verdicts are recorded above, but alerts follow the run's
                # newest evaluated checkpoint, so that one decides again (with the late verdict).
                decided = [(r, ds) for r, ds in decided if not r.follows_newest] + [
                    (r, self._decide(r, newest)) for r in rules if r.follows_newest
                ]
            self._apply(d for _, decisions in decided for d in decisions)

    def after_early(self, row: CheckpointRow, verdict: EarlyVerdict) -> None:
        """Decide the rules on an early warning, while ``row``'s exact evaluation still runs."""
        with self._lock:
            self.context.begin_decision()
            decisions: list[Decision] = []
            for rule in self.rules_for(row.run):
                decide = functools.partial(rule.decide_early, row, verdict)
                decisions += self._guarded(rule, row.run, row.name, decide)
            self._apply(decisions)

    def tick(self) -> None:
        """Periodic work: time-based rules, repeats of firing alerts, Alertmanager re-sends."""
        with self._lock:
            now = self.clock()
            decisions: list[Decision] = []
            for run in self.config.runs:
                for rule in self.rules_for(run.name):
                    decide = functools.partial(rule.decide_periodic, run.name, now)
                    decisions += self._guarded(rule, run.name, None, decide)
            self._apply(decisions)
            self._write(self.episodes.repeats_due(self.store.ledger.open_alerts, now))
            refreshes = self.resends.due(now, self.store.ledger.open_alerts)
            self._write(EpisodeChanges(messages=refreshes))

    # -- deciding -------------------------------------------------------------------------------

    def _decide(self, rule: AlertRule[Any], row: CheckpointRow) -> list[Decision]:
        """One rule's decisions for ``row``, its verdicts recorded (none when the rule fails)."""
        if row.state == "failed" and not rule.decides_failed:
            return []
        decisions = self._guarded(rule, row.run, row.name, functools.partial(rule.decide, row))
        for d in decisions:
            if d.verdict is not None:
                v = d.verdict
                self.store.ledger.record_verdict(
                    v.checkpoint_id,
                    dataset=v.dataset,
                    metric=v.metric,
                    k=v.k,
                    kind=v.kind,
                    value=v.value,
                    regressed=v.regressed,
                    now=self.clock(),
                    baseline_checkpoint_id=v.baseline_checkpoint_id,
                    baseline_value=v.baseline_value,
                    p_value=v.p_value,
                    details=v.details,
                )
        return decisions

    @staticmethod
    def _guarded(
        rule: AlertRule[Any],
        run: str,
        checkpoint: str | None,
        decide: Callable[[], list[Decision]],
    ) -> list[Decision]:
        """The decisions of ``decide``; none if it fails (a broken rule must not silence others)."""
        try:
            return decide()
        except Exception:
            log.exception(
                "alert rule failed",
                extra=fields(rule=rule.config.name, run=run, checkpoint=checkpoint),
            )
            return []

    def _newest_evaluated(self, row: CheckpointRow) -> CheckpointRow | None:
        """The run's evaluated checkpoint with the highest step (``row`` included if evaluated)."""
        rows = self.store.queue.checkpoints(row.run, states=["evaluated"])
        if row.state == "evaluated" and all(r.id != row.id for r in rows):
            rows.append(row)
        return max(rows, key=by_step, default=None)

    # -- applying decisions ---------------------------------------------------------------------

    def _apply(self, decisions: Iterable[Decision]) -> None:
        """Turn decisions into episode transitions; write them and their messages at once."""
        now = self.clock()
        changes = EpisodeChanges()
        quieted = 0
        for d in decisions:
            key = d.key.as_string()
            record = self.store.ledger.open_alert(key)
            episode = None if record is None else OpenEpisode.of(record)
            action = transition(episode, d.firing, now, self.episodes.repeat_interval)
            quiet = self._backfill(d.checkpoint)
            target = EpisodeChanges() if quiet else changes
            if action == "fire" and d.build is not None:
                # Numbered episodes: a re-opened key is a new alert with new message ids.
                aid = alert_id(d.key, d.opened_by, self.store.ledger.count_episodes(key))
                self.episodes.fire(d.rule, d.build(aid), now, target)
            elif action == "repeat" and record is not None:
                self.episodes.repeat(record, d.rule, now, target)
            elif action == "resolve" and record is not None:
                self.episodes.resolve(
                    record, d.rule, d.checkpoint, now, target, note=d.note, resolution=d.resolution
                )
            if quiet and target:
                # Recorded (state, API, metrics) but not sent: an earlier store may have sent it.
                changes.writes += target.writes
                quieted += 1
                log.info(
                    "alert %s recorded, not sent: backfill (checkpoint seen %.0f s after it was "
                    "completed, notifications.backfill_quiet_seconds is %.0f)",
                    action,
                    quiet,
                    self.config.notifications.backfill_quiet_seconds,
                    extra=fields(
                        rule=d.rule.name,
                        run=d.key.run,
                        checkpoint=d.checkpoint.name if d.checkpoint else None,
                        messages_not_sent=len(target.messages),
                    ),
                )
        self._write(changes, failpoint=True)
        self.suppressed["backfill"] += quieted  # counted once written

    def _backfill(self, checkpoint: CheckpointRow | None) -> float | None:
        """How long after its completion ``checkpoint`` was first seen, if that makes it backfill.

        A checkpoint that this store discovered long after it was completed was not decided on
        when it was new, here; an earlier store (lost, replaced with ``--fresh-store``) or an
        outage may have covered it, so what it decides is recorded without paging anyone again.
        """
        limit = self.config.notifications.backfill_quiet_seconds
        if checkpoint is None or limit is None:
            return None
        lag = checkpoint.discovered_at - checkpoint.completed_at
        return lag if lag > limit else None

    def _write(self, changes: EpisodeChanges, *, failpoint: bool = False) -> None:
        """Write alert states with their messages in one transaction, then wake the senders."""
        if not changes:
            return
        self.store.ledger.apply_alerts(changes.writes, changes.messages)
        if failpoint and changes.messages:
            failpoints.crash_here(failpoints.AFTER_DECISION)
        self.wake()
