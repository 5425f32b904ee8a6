"""The daemon: every new complete checkpoint, evaluated once, its results stored and decided on.

The pipeline, one hop per step (``Daemon.start`` schedules ``poll`` now and every
``poll_interval_seconds``, as an APScheduler job with ``coalesce=True, max_instances=1``):

1. found: ``Daemon.poll`` -> ``Discovery.discover`` scans each run directory (``scan_run``) for
   newly complete checkpoints (ready marker present, settled). Each run is scanned on its own: an
   error in one is logged with its name and the others go on.
2. queued: ``Discovery.record`` stores each with its step and mining metadata as ``discovered``;
   ``Daemon.dispatch`` takes free slots (``evaluation.concurrency``) in the order of
   ``scheduling.next_checkpoints`` (``oldest_first`` round-robin, or ``latest_only``) and marks
   them ``evaluating``.
3. evaluated: ``Daemon.evaluate_checkpoint`` -> ``Evaluator.evaluate_on`` runs each held-out set
   in a child process (``runner.run_isolated``; a timeout or crash is a counted failure),
   skipping any already done under the same idempotency key.
4. stored: ``Evaluator.evaluate_on`` writes each result in one transaction
   (``store.results.record_evaluation``; a failure with ``record_failure``).
5. audited: ``FnAuditor.audit`` attaches the false-negative estimate of the checkpoint's mined set
   (audited once per set, in a child process); then the checkpoint is ``evaluated``. With
   ``review`` among the oracles, ``ReviewFeed`` (``daemon.review_feed``) re-estimates a set as its
   ``/review`` labels change, stores the new estimate and decides the alerts again (step 6).
6. decided: ``Daemon.after_evaluation`` hands a checkpoint that became ``evaluated`` or ``failed``
   to ``on_checkpoint``: with a notifier, ``Notifier.after_checkpoint`` ->
   ``Alerting.after_checkpoint`` decides the rules and writes alerts with their outbox messages.
   It runs in the evaluation's slot: keep it quick.
7. notified: the delivery workers (``notify.delivery.Dispatcher``, started by ``Notifier.start``)
   send the outbox's messages; a ``notifications`` job runs the periodic rules
   (``Notifier.tick``) every ``NOTIFY_TICK_SECONDS``.

Each finished evaluation frees its slot and dispatches the next at once, so a backfill does not
wait for polls.

When the store cannot be written (disk full, I/O error: ``store.write_failure``), nothing is
dispatched and ``/readyz`` says so; a checkpoint whose outcome could not be stored is held here.
Each poll probes the store (``Store.probe_write``); once it can be written, the held checkpoints
are recorded ``failed`` with reason ``store_unavailable`` (counted) and queued again, and the
daemon is ready again, without a restart.

``Daemon.prepare`` first re-queues what a crash or a config change left behind.
The exporter and the HTTP API read the store; nothing here keeps state that a restart would lose.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from recallwatch.config import Config, RunConfig
from recallwatch.daemon.auditor import FnAuditor
from recallwatch.daemon.discovery import Discovery
from recallwatch.daemon.evaluation import (
    STORE_UNAVAILABLE,
    Evaluator,
    dataset_key,
    requeue_unavailable,
)
from recallwatch.daemon.review_feed import ReviewFeed, SetPlans, reviewing
from recallwatch.daemon.runner import (
    AuditRunner,
    Runner,
    WarmChildren,
    estimate_isolated,
    run_isolated,
)
from recallwatch.daemon.scheduling import next_checkpoints, skip
from recallwatch.logs import fields
from recallwatch.store import CheckpointRow, EarlyVerdict, Store
from recallwatch.store.db import unwritable

if TYPE_CHECKING:
    from recallwatch.daemon.notifier import Notifier
    from recallwatch.mining.review import ReviewPlan

__all__ = ["NOTIFY_TICK_SECONDS", "Daemon"]

#: The daemon's log: one logger name for its whole pipeline.
log = logging.getLogger("recallwatch.daemon")

Clock = Callable[[], float]
#: How often the periodic alert rules run (no recent evaluation, repeats, Alertmanager re-sends).
NOTIFY_TICK_SECONDS = 10.0


class Daemon:
    """Watch the configured runs and evaluate each new complete checkpoint once."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock = time.time,
        runner: Runner | None = None,
        fn_runner: AuditRunner | None = None,
        on_checkpoint: Callable[[CheckpointRow], None] | None = None,
        notifier: Notifier | None = None,
        review_plans: Callable[[str], ReviewPlan | None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        #: Called with a checkpoint that became evaluated or failed (the regression decision and
        #: alert delivery hang here); its errors are logged, never fatal.
        self.on_checkpoint = on_checkpoint
        #: The regression decision and alert delivery (``notifier.Notifier``), when configured.
        self.notifier = notifier
        if notifier is not None and on_checkpoint is None:
            self.on_checkpoint = notifier.after_checkpoint
        self.discovery = Discovery(store, clock)
        #: The warm parent of the evaluation and audit children (``evaluation.warm_child``), for
        #: the runners not given here; None: each child is a fresh interpreter.
        self.children = WarmChildren() if config.evaluation.warm_child else None
        if runner is None:
            runner = run_isolated if self.children is None else self.children.run
        if fn_runner is None:
            fn_runner = estimate_isolated if self.children is None else self.children.estimate
        self.evaluator = Evaluator(config, store, runner, clock, on_early=self._early_warning)
        #: The false-negative auditor; None without a ``false_negatives`` section.
        self.auditor = (
            None
            if config.false_negatives is None
            else FnAuditor(config.false_negatives, store, fn_runner, clock)
        )
        #: Re-estimates mined sets from their review labels; None unless ``review`` is an oracle.
        self.review: ReviewFeed | None = None
        if self.auditor is not None and reviewing(config.false_negatives):
            fn = self.auditor.config
            self.review = ReviewFeed(
                fn,
                store,
                self.auditor.config_hash,
                review_plans or SetPlans(fn, store),
                clock=clock,
                on_estimate=self._estimate_changed,
            )
            self.auditor.review = self.review
        self.last_poll_at: float | None = None
        #: Configuration sections a reload found changed that only a restart applies.
        self.restart_required: tuple[str, ...] = ()
        #: What was handled without an error at start (labels restored from the review mirror
        #: ...), by name: reported in ``/readyz``'s ``handled`` and as counters.
        self.handled: dict[str, int] = {}
        self.last_poll_error: str | None = None
        self._run_ids: dict[str, int] = {}
        self._keys: dict[str, dict[str, str]] = {}
        #: ``_keys`` of each run as its canonical JSON (the queue's ``eval_key``).
        self._eval_keys: dict[str, str] = {}
        self._inflight: dict[int, Future[None]] = {}
        #: Checkpoints whose outcome could not be stored: id -> (row, started, error message).
        self._unstored: dict[int, tuple[CheckpointRow, float, str]] = {}
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._stopping = False
        self._cancel = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=config.evaluation.concurrency, thread_name_prefix="evaluation"
        )
        self._scheduler: BackgroundScheduler | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def prepare(self, *, retry_failed: bool = False) -> None:
        """Register runs; re-queue interrupted, re-keyed and (if asked) failed checkpoints."""
        now = self.clock()
        for row in self.store.queue.recover(now):
            log.warning(
                "re-running a checkpoint interrupted mid-evaluation",
                extra=fields(run=row.run, checkpoint=row.name, step=row.step),
            )
        for run in self.config.runs:
            run_id = self._register(run, now)
            if retry_failed:
                retried = self.store.queue.requeue_failed(run_id, now)
                log.info(
                    "%d failed checkpoint(s) queued again", retried, extra=fields(run=run.name)
                )
                if self.auditor is not None:
                    audits = self.auditor.requeue_failed(run_id, now)
                    log.info(
                        "%d failed false-negative audit(s) queued again",
                        audits,
                        extra=fields(run=run.name),
                    )
        if self.auditor is None:
            log.info("false-negative estimation is off (no false_negatives section in the config)")

    def _register(self, run: RunConfig, now: float) -> int:
        """Store a run (or its new directory), its evaluation keys; re-queue re-keyed ones."""
        run_id = self.store.queue.ensure_run(run.name, str(run.directory), now)
        self._run_ids[run.name] = run_id
        self._keys[run.name] = {
            h.dataset: dataset_key(self.config, run, h) for h in self.config.heldout
        }
        self._eval_keys[run.name] = json.dumps(
            self._keys[run.name], sort_keys=True, separators=(",", ":")
        )
        requeued = self.store.queue.rekey(run_id, self._eval_key(run.name), now)
        if requeued:
            log.info(
                "evaluation settings changed: %d checkpoint(s) queued again",
                requeued,
                extra=fields(run=run.name),
            )
        return run_id

    def reload(self, config: Config) -> None:
        """Run with ``config`` from now on: its runs registered, removed ones dropped, its
        notifications decided and delivered, its poll interval scheduled.

        ``daemon.reload.reload_config`` validates the file and passes only what may change live;
        a removed run's evaluation in flight finishes, its history stays stored. The runs are
        registered first (a store that cannot be written raises here), then the alerting side
        is rebuilt and swapped (``Notifier.reconfigure``; a rule that cannot be built raises
        before anything of it changes), then the rest: an error leaves the old configuration
        running (a run registered by then is stored, not polled).
        """
        with self._lock:
            now = self.clock()
            # Registered before the swap: a poll never sees a run without its id and keys.
            for run in config.runs:
                self._register(run, now)
        if self.notifier is not None and config.notifications != self.config.notifications:
            self.notifier.reconfigure(config)
        with self._lock:
            interval_changed = config.poll_interval_seconds != self.config.poll_interval_seconds
            self.config = config
            self.evaluator.config = config
            if self.notifier is not None:
                self.notifier.config = config
                self.notifier.alerting.config = config
        if self._scheduler is not None and self._scheduler.running:
            if interval_changed:
                self._scheduler.reschedule_job(
                    "discovery", trigger="interval", seconds=config.poll_interval_seconds
                )
            self._scheduler.modify_job("discovery", next_run_time=datetime.now(UTC))

    def start(self, *, retry_failed: bool = False) -> None:
        """Prepare, then poll now and every ``poll_interval_seconds`` in a background thread."""
        self.prepare(retry_failed=retry_failed)
        scheduler = BackgroundScheduler(timezone=UTC)
        jobs = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        scheduler.add_job(
            self.poll,
            "interval",
            seconds=self.config.poll_interval_seconds,
            id="discovery",
            next_run_time=datetime.now(UTC),
            **jobs,
        )
        if self.notifier is not None:
            # Delivery first: messages a crash left in the outbox go out without waiting.
            self.notifier.start()
            scheduler.add_job(
                self.notifier.tick,
                "interval",
                seconds=NOTIFY_TICK_SECONDS,
                id="notifications",
                **jobs,
            )
        scheduler.start()
        self._scheduler = scheduler
        if self.review is not None:
            self.review.catch_up()
            self.review.start()

    def review_changed(self, key: str) -> None:
        """A ``/review`` label of the set ``key`` changed (the review pages call it)."""
        if self.review is not None:
            self.review.changed(key)

    def _estimate_changed(self, row: CheckpointRow) -> None:
        """A set's estimate changed outside an evaluation: decide the checkpoint's alerts again."""
        if self.on_checkpoint is not None:
            self.on_checkpoint(row)

    @property
    def scheduler_running(self) -> bool:
        """Whether the discovery job is scheduled and the scheduler's thread is alive.

        APScheduler's ``running`` stays true when its thread dies of an unexpected error, so the
        thread is checked too: a dead one fails ``/healthz`` and the liveness probe restarts us.
        """
        if self._scheduler is None or not self._scheduler.running:
            return False
        thread = getattr(self._scheduler, "_thread", None)
        return thread is None or bool(thread.is_alive())

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop polling; let running evaluations finish within the grace period, else re-queue."""
        grace = (
            self.config.evaluation.shutdown_grace_seconds
            if grace_seconds is None
            else grace_seconds
        )
        with self._lock:
            self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self.review is not None:
            self.review.stop()
        if not self.wait_idle(grace):
            log.warning(
                "evaluation still running after the %.0f s grace period: stopping it; "
                "it will be re-run at the next start",
                grace,
            )
            self._cancel.set()
        self._pool.shutdown(wait=True)
        if self.children is not None:
            self.children.close()
        if self.notifier is not None:
            self.notifier.stop()

    def force_stop(self) -> None:
        """Stop running evaluations now (a second signal); they are re-run at the next start."""
        self._cancel.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no evaluation runs; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- 1, 2: found, queued ------------------------------------------------------------------

    def poll(self) -> None:
        """Scan every run for newly complete checkpoints, then dispatch evaluations."""
        if not self.store_writable():
            self.last_poll_error = f"{STORE_UNAVAILABLE}: {self.store.write_failure}"
            self.last_poll_at = self.clock()
            return
        try:
            self._poll()
        except sqlite3.Error as exc:
            if not unwritable(exc):
                raise
            self.last_poll_error = f"{STORE_UNAVAILABLE}: {exc}"
            log.error("the store cannot be written: %s; probing it at every poll", exc)

    def store_writable(self) -> bool:
        """Whether the store can be written; if it can again, settle what it could not store."""
        with self._lock:
            if self.store.write_failure is None and not self._unstored:
                return True
            try:
                self.store.probe_write()
                now = self.clock()
                for cid, (row, started, message) in list(self._unstored.items()):
                    self.store.results.record_failure(
                        row.id,
                        dataset="",
                        encoder="",
                        config_hash="",
                        started_at=started,
                        finished_at=now,
                        reason=STORE_UNAVAILABLE,
                        message=f"the store could not be written ({message}); queued again once "
                        "it could",
                    )
                    del self._unstored[cid]
            except sqlite3.Error:
                return False
            log.warning(
                "the store can be written again; failed writes recorded and their checkpoints "
                "queued again"
            )
            return True

    def _poll(self) -> None:
        errors: list[str] = []
        # One read of the checkpoint change log for every run: a run whose checkpoints did not
        # change, with none queued or failed, costs the poll no query (issue 26).
        states = self.store.views.checkpoint_states()
        for run in self.config.runs:
            try:
                errors += self.discovery.discover(
                    run, self._run_ids[run.name], self._eval_key(run.name), states.get(run.name)
                )
            except Exception as exc:  # one run's failure must not stop the others, nor the job
                errors.append(f"run {run.name}: {type(exc).__name__}: {exc}")
                log.exception(
                    "discovery failed; retrying at the next poll", extra=fields(run=run.name)
                )
        self.last_poll_error = "; ".join(errors) or None
        self.last_poll_at = self.clock()
        for run in self.config.runs:  # a Ray cluster that could not be reached: try again now
            if run.name in states and states[run.name][1].get("failed", 0):
                requeue_unavailable(self.store, run.name, self.last_poll_at)
        self.dispatch()

    def dispatch(self) -> None:
        """Start evaluations of queued checkpoints while slots are free."""
        with self._lock:
            # While the store cannot be written an evaluation's result would be lost: wait.
            if self._stopping or self.store.write_failure is not None or self._unstored:
                return
            free = self.config.evaluation.concurrency - len(self._inflight)
            chosen = next_checkpoints(
                self.config, self.store, free, running=self._inflight.keys(), clock=self.clock
            )
            for row in chosen:
                try:
                    started = self.store.queue.set_state(
                        row.id, "evaluating", self.clock(), expect=["discovered"]
                    )
                except sqlite3.Error as exc:
                    if not unwritable(exc):
                        raise
                    log.error("the store cannot be written: %s; probing it at every poll", exc)
                    return
                if started:
                    self._inflight[row.id] = self._pool.submit(self._evaluate_and_continue, row)

    def _evaluate_and_continue(self, row: CheckpointRow) -> None:
        started = self.clock()
        try:
            try:
                self.evaluate_checkpoint(row)
            except Exception as exc:
                if isinstance(exc, sqlite3.Error) and unwritable(exc):
                    self._hold_unstored(row, started, exc)
                    return
                log.exception(
                    "unexpected error evaluating a checkpoint",
                    extra=fields(run=row.run, checkpoint=row.name),
                )
                now = self.clock()
                self.store.results.record_failure(
                    row.id,
                    dataset="",
                    encoder="",
                    config_hash="",
                    started_at=now,
                    finished_at=now,
                    reason="internal",
                    message=f"{type(exc).__name__}: {exc} (the daemon log has the traceback)",
                )
        except sqlite3.Error as exc:  # the failure itself could not be recorded
            if not unwritable(exc):
                raise
            self._hold_unstored(row, started, exc)
        finally:
            self.after_evaluation(row)
            # Free the slot and take the next checkpoint under one lock, so that "idle" is never
            # observed between two evaluations of a backfill.
            with self._idle:
                self._inflight.pop(row.id, None)
                try:
                    self.dispatch()
                finally:
                    self._idle.notify_all()

    def _hold_unstored(self, row: CheckpointRow, started: float, exc: sqlite3.Error) -> None:
        """Hold a checkpoint whose outcome the store refused, until it can be written again."""
        log.error(
            "the store cannot be written: %s; the checkpoint is queued again once it can "
            "(reason %s)",
            exc,
            STORE_UNAVAILABLE,
            extra=fields(run=row.run, checkpoint=row.name, step=row.step),
        )
        with self._lock:
            self._unstored[row.id] = (row, started, str(exc))

    # -- 3, 4, 5: evaluated, stored, audited ---------------------------------------------------

    def evaluate_checkpoint(self, row: CheckpointRow) -> None:
        """Evaluate a checkpoint on every held-out set, store the results, audit, set its state."""
        run = self.config.run(row.run)
        if not row.audit_only and not Path(row.path).is_dir():
            message = "the checkpoint was deleted before its evaluation"
            skip(self.store, row, "deleted", message, self.clock())
            return
        run_id, keys = self._run_ids[run.name], self._keys[run.name]
        for heldout in self.config.heldout:
            if not self.evaluator.evaluate_on(
                row, run, run_id, heldout, keys[heldout.dataset], self._cancel
            ):
                return  # failed, skipped or re-queued: the state says which
        if self.auditor is not None and not self.auditor.audit(run, run_id, row, self._cancel):
            return  # stopped by shutdown: queued again
        self.store.queue.set_state(row.id, "evaluated", self.clock())

    # -- 6: decided (and 7, notified, by the notifier's workers) --------------------------------

    def after_evaluation(self, row: CheckpointRow) -> None:
        """Hand a checkpoint that reached evaluated or failed to ``on_checkpoint``."""
        if self.on_checkpoint is None:
            return
        try:
            done = self.store.queue.checkpoint_by_id(row.id)
            if done.state in ("evaluated", "failed"):
                self.on_checkpoint(done)
        except Exception:
            log.exception(
                "the after-evaluation hook failed", extra=fields(run=row.run, checkpoint=row.name)
            )

    def _early_warning(self, row: CheckpointRow, verdict: EarlyVerdict) -> None:
        """Hand an early warning to the notifier (the ``early_warning`` rule), if any."""
        if self.notifier is not None:
            self.notifier.after_early(row, verdict)

    # -- readiness and helpers ----------------------------------------------------------------

    def in_flight(self) -> frozenset[int]:
        """Checkpoints being evaluated or decided now: the exporter holds an evaluated one back
        until its decision is recorded (``after_evaluation`` runs after it is ``evaluated``)."""
        with self._lock:
            return frozenset(self._inflight)

    def readiness(self) -> dict[str, Any]:
        """The checks behind ``/readyz``: store open and writable, scheduler up, poll recent."""
        now = self.clock()
        limit = 2 * self.config.poll_interval_seconds + 10.0
        recent = self.last_poll_at is not None and now - self.last_poll_at <= limit
        failure = self.store.write_failure
        with self._lock:
            held = len(self._unstored)
        checks = {
            "store": self.store.ping(),
            "store_writable": failure is None and not held,
            "scheduler": self.scheduler_running,
            "recent_poll": recent,
        }
        reason = None
        if not checks["store_writable"]:
            reason = f"{STORE_UNAVAILABLE}: {failure or 'a write failed'}"
        elif not all(checks.values()):
            reason = "failed: " + ", ".join(name for name, ok in checks.items() if not ok)
        return {
            "ready": all(checks.values()),
            "reason": reason,
            "checks": checks,
            "last_poll_at": self.last_poll_at,
            "last_poll_error": self.last_poll_error,
            "evaluating": len(self._inflight),
            "config": {"restart_required": list(self.restart_required)},
            "handled": self.handled_counts(),
        }

    def handled_counts(self) -> dict[str, Any]:
        """What was handled without stopping since the start, which a person may want to know:
        alerts recorded but not sent (by reason), alert decisions that raised (by stage), review
        labels put back from the mirror, early
        passes that failed (the exact pass ran), review re-estimates that failed (retried), warm
        parents of the evaluation children that died and were replaced."""
        suppressed = {"backfill": 0}
        decisions = {"checkpoint": 0, "early": 0, "tick": 0}
        if self.notifier is not None:
            suppressed.update(self.notifier.alerting.suppressed)
            decisions.update(self.notifier.decision_failures)
        return {
            "alerts_suppressed": suppressed,
            "alert_decision_failures": decisions,
            "early_pass_failures": self.evaluator.early_failures,
            "review_estimate_failures": 0 if self.review is None else self.review.failures,
            "zygote_restarts": 0 if self.children is None else self.children.restarts,
            **self.handled,
        }

    def _eval_key(self, run: str) -> str:
        return self._eval_keys[run]
