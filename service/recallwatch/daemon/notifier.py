"""The daemon's alerting side: decisions after each checkpoint, and the delivery workers.

``Notifier`` wires the decision engine (``alerting.engine.Alerting``) to the outbox's delivery
workers (``notify.delivery.Dispatcher``): a decision that enqueues messages wakes the workers. At
start it fails pending messages of channels no longer configured, starts delivering, and catches
up on decisions a crash may have skipped.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable

import requests

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.rules import by_step
from recallwatch.config import Config
from recallwatch.logs import fields
from recallwatch.notify.channels import target_for
from recallwatch.notify.delivery import Dispatcher
from recallwatch.retry import RetryPolicy
from recallwatch.store import CheckpointRow, EarlyVerdict, Store

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """The daemon's alerting side: decisions after each checkpoint, and the delivery workers."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        session_factory: Callable[[], requests.Session] = requests.Session,
        policy: RetryPolicy | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.store = store
        targets = {c.name: target_for(c) for c in config.notifications.channels}
        self.dispatcher = Dispatcher(
            store.outbox,
            targets,
            policy=policy or RetryPolicy(),
            session_factory=session_factory,
            clock=clock,
            rng=rng,
            # Asleep until a decision enqueues a message (``wake``) or the next retry is due.
            idle_seconds=None,
        )
        self.alerting = Alerting(config, store, clock=clock, wake=self.dispatcher.wake)
        #: Alert decisions that raised (logged), by stage: ``checkpoint`` (a checkpoint evaluated
        #: or failed), ``early`` (an early warning), ``tick`` (periodic rules, repeats, re-sends);
        #: ``recallwatch_alert_decision_failures_total{stage}``. Each is decided again later: the
        #: next checkpoint or tick, and ``catch_up`` at start.
        self.decision_failures: dict[str, int] = {"checkpoint": 0, "early": 0, "tick": 0}

    @property
    def enabled(self) -> bool:
        """Whether any rule is configured."""
        return bool(self.config.notifications.rules)

    def start(self) -> None:
        """Start delivering (pending messages of a previous run first), then catch up."""
        self._fail_unconfigured()
        self.dispatcher.start()
        self.catch_up()

    def reconfigure(self, config: Config) -> None:
        """Use ``config``'s channels and rules from now on (a SIGHUP reload; see daemon.reload).

        Built first, then applied: the decisions (``Alerting.reconfigure``) swap atomically,
        then the delivery workers follow the channels. Pending messages of a channel no longer
        configured are failed, as at a start.
        """
        targets = {c.name: target_for(c) for c in config.notifications.channels}
        self.alerting.reconfigure(config)
        self.config = config
        self.dispatcher.retarget(targets)
        try:
            self._fail_unconfigured()
        except sqlite3.Error as exc:  # applied all the same; the next start fails them
            log.warning("pending notifications of removed channels not failed now: %s", exc)

    def _fail_unconfigured(self) -> None:
        dropped = self.store.outbox.fail_pending_except(
            [c.name for c in self.config.notifications.channels], self.alerting.clock()
        )
        if dropped:
            log.warning(
                "%d pending notification(s) were for channels no longer configured: failed",
                dropped,
            )

    def catch_up(self) -> None:
        """Re-decide each run's latest evaluated and latest failed checkpoints (idempotent)."""
        # A crash may have come between a checkpoint's evaluation (or failure) and its decision.
        for run in self.config.runs:
            latest = self.store.views.latest_evaluated(run.name)
            if latest is not None:
                self.after_checkpoint(latest)
            failed = self.store.queue.checkpoints(run.name, states=["failed"])
            if failed:
                self.after_checkpoint(max(failed, key=by_step))

    def after_checkpoint(self, row: CheckpointRow) -> None:
        """Decide the rules for a checkpoint that became evaluated or failed."""
        try:
            self.alerting.after_checkpoint(row)
        except Exception:
            self.decision_failures["checkpoint"] += 1
            log.exception(
                "the alert decision failed", extra=fields(run=row.run, checkpoint=row.name)
            )

    def after_early(self, row: CheckpointRow, verdict: EarlyVerdict) -> None:
        """Decide the rules on an early warning, while the exact evaluation runs."""
        try:
            self.alerting.after_early(row, verdict)
        except Exception:
            self.decision_failures["early"] += 1
            log.exception(
                "the early-warning decision failed", extra=fields(run=row.run, checkpoint=row.name)
            )

    def tick(self) -> None:
        """Periodic rules, repeats and Alertmanager re-sends."""
        try:
            self.alerting.tick()
        except Exception:
            self.decision_failures["tick"] += 1
            log.exception("the periodic alert check failed")

    def stop(self) -> None:
        """Stop the delivery workers (pending messages stay in the outbox for the next start)."""
        self.dispatcher.stop()
