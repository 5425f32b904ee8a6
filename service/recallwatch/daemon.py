"""The daemon's wiring: discover checkpoints -> queue -> evaluate -> persist (-> FN estimate).

Read top-down:

1. ``start`` re-queues what a crash or a config change left behind, then schedules ``poll`` (an
   APScheduler interval job, ``coalesce=True, max_instances=1``) to run now and every
   ``poll_interval_seconds``.
2. ``poll`` scans every run directory and records each newly complete checkpoint (its step and
   mining metadata) as ``discovered``; queued checkpoints that vanished are ``skipped``. Each run
   is scanned on its own: an error in one is logged with its name and the others go on.
3. ``dispatch`` starts evaluations while fewer than ``evaluation.concurrency`` run: oldest first
   within a run and round-robin across runs (``oldest_first``, never skipping), or only the newest
   of each run (``latest_only``, the older ones ``skipped``).
4. ``evaluate_checkpoint`` evaluates the checkpoint on each held-out set in a child process (see
   ``runner``), skipping any already done under the same idempotency key, stores each result in
   one transaction, estimates the mined set's false-negative rate where configured (a failed
   audit is recorded, counted and retried with the set's next checkpoint), and marks the
   checkpoint ``evaluated`` (or ``failed`` with a bounded reason). Each finished evaluation frees a
   slot and dispatches the next one at once, so a backfill does not wait for polls.
5. ``on_checkpoint`` gets each checkpoint that became ``evaluated`` or ``failed``: the regression
   decision and alert delivery hang there (it runs in the evaluation's slot: keep it quick, queue
   slow work such as sending). With a ``notifier`` (``alerting.Notifier``) that is its decision
   step, which writes alerts and their outbox messages; the notifier's delivery workers send them,
   and a ``notifications`` job runs the periodic rules every ``NOTIFY_TICK_SECONDS``.

The exporter and the HTTP API read the store; nothing here keeps state that a restart would lose.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from recallwatch.checkpoints import (
    FoundCheckpoint,
    checkpoint_dirs,
    read_mining_metadata,
    scan_run,
)
from recallwatch.config import Config, FalseNegativeConfig, HeldoutConfig, RunConfig, dataset_key
from recallwatch.errors import RecallwatchError
from recallwatch.logs import fields
from recallwatch.mining.oracles.http import redact_url
from recallwatch.runner import (
    EvaluationError,
    FnJob,
    Interrupted,
    Job,
    Runner,
    estimate_isolated,
    run_isolated,
)
from recallwatch.store import CheckpointRow, FnEstimate, NewEvaluation, Store

if TYPE_CHECKING:
    from recallwatch.alerting.engine import Notifier

__all__ = ["Daemon", "FnRunner", "fn_job", "redact_specs"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
#: How often the periodic alert rules run (no recent evaluation, repeats, Alertmanager re-sends).
NOTIFY_TICK_SECONDS = 10.0
#: The state reason of an evaluated checkpoint queued again to retry its failed FN audit.
FN_RETRY = "fn_retry"


# -- false negatives ----------------------------------------------------------------------------

#: ``fn_runner(job, timeout_seconds, cancel)``: an FN-rate audit, like ``runner`` for evaluations.
FnRunner = Callable[[FnJob, float, threading.Event], FnEstimate]


#: How an http judge is reached, not what it judges: left out of the audit's identity, so that
#: changing them (or upgrading to a version that has them) re-audits nothing.
_TRANSPORT_FIELDS = {
    "http_auth_env",
    "http_auth_file",
    "http_header_env",
    "http_timeout_seconds",
    "http_retries",
    "http_batch_size",
}


def _fn_config_hash(config: FalseNegativeConfig) -> str:
    blob = json.dumps(
        config.model_dump(mode="json", exclude=_TRANSPORT_FIELDS), sort_keys=True
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def redact_specs(text: str, specs: list[str]) -> str:
    """``text`` with each http(s) oracle spec of ``specs`` replaced by its ``redact_url`` form."""
    for spec in specs:
        if spec.startswith(("http://", "https://")):
            shown = redact_url(spec)
            text = text.replace(spec, shown)
            # As it appears inside JSON strings too (a URL with escaped characters).
            text = text.replace(json.dumps(spec)[1:-1], json.dumps(shown)[1:-1])
    return text


def _redacted_estimate(est: FnEstimate, specs: list[str]) -> FnEstimate:
    details = json.loads(redact_specs(json.dumps(dict(est.details)), specs))
    return replace(est, oracle=redact_specs(est.oracle, specs), details=details)


def fn_job(config: FalseNegativeConfig, mined_set: Path, mining: dict[str, Any]) -> FnJob:
    """The audit of a mined set; ``range_min`` of the mining metadata is the rank offset."""
    offset = mining.get("range_min")
    return FnJob(
        mined_set=str(mined_set),
        corpus=str(config.corpus),
        oracles=list(config.oracles),
        format=config.format,
        allow_unmatched=config.allow_unmatched,
        rank_offset=offset if isinstance(offset, int) and not isinstance(offset, bool) else 0,
        agree=config.agree,
        relevance_level=config.relevance_level,
        judge_relative_margin=config.judge_relative_margin,
        judge_threshold=config.judge_threshold,
        device=config.device,
        batch_size=config.batch_size,
        sample_size=config.sample_size,
        half_width=config.half_width,
        sampling=config.sampling,
        rank_buckets=list(config.rank_buckets),
        control_size=config.control_size,
        seed=config.seed,
        target=config.target,
        http_timeout=config.http_timeout_seconds,
        http_retries=config.http_retries,
        http_batch_size=config.http_batch_size,
        http_auth_env=config.http_auth_env,
        http_auth_file=None if config.http_auth_file is None else str(config.http_auth_file),
        http_header_env=list(config.http_header_env),
    )


# -- the daemon -----------------------------------------------------------------------------------


class Daemon:
    """Watch the configured runs and evaluate each new complete checkpoint once."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock = time.time,
        runner: Runner = run_isolated,
        fn_runner: FnRunner = estimate_isolated,
        on_checkpoint: Callable[[CheckpointRow], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.runner = runner
        self.fn_runner = fn_runner
        #: Called with a checkpoint that became evaluated or failed (the regression decision and
        #: alert delivery hang here); its errors are logged, never fatal.
        self.on_checkpoint = on_checkpoint
        #: The regression decision and alert delivery (``alerting.Notifier``), when configured.
        self.notifier = notifier
        if notifier is not None and on_checkpoint is None:
            self.on_checkpoint = notifier.after_checkpoint
        self.last_poll_at: float | None = None
        self.last_poll_error: str | None = None
        self._bad_checkpoints: set[tuple[str, str]] = set()
        self._run_ids: dict[str, int] = {}
        self._keys: dict[str, dict[str, str]] = {}
        self._inflight: dict[int, Future[None]] = {}
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
            self._run_ids[run.name] = self.store.queue.ensure_run(run.name, str(run.directory), now)
            self._keys[run.name] = {
                h.dataset: dataset_key(self.config, run, h) for h in self.config.heldout
            }
            requeued = self.store.queue.rekey(self._run_ids[run.name], self._eval_key(run.name), now)
            if retry_failed:
                retried = self.store.queue.requeue_failed(self._run_ids[run.name], now)
                log.info(
                    "%d failed checkpoint(s) queued again", retried, extra=fields(run=run.name)
                )
                if self.config.false_negatives is not None:
                    audits = self.store.queue.requeue_failed_audits(
                        self._run_ids[run.name], _fn_config_hash(self.config.false_negatives), now
                    )
                    log.info(
                        "%d failed false-negative audit(s) queued again",
                        audits,
                        extra=fields(run=run.name),
                    )
            if requeued:
                log.info(
                    "evaluation settings changed: %d checkpoint(s) queued again",
                    requeued,
                    extra=fields(run=run.name),
                )
        if self.config.false_negatives is None:
            log.info("false-negative estimation is off (no false_negatives section in the config)")

    def start(self, *, retry_failed: bool = False) -> None:
        """Prepare, then poll now and every ``poll_interval_seconds`` in a background thread."""
        self.prepare(retry_failed=retry_failed)
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self.poll,
            "interval",
            seconds=self.config.poll_interval_seconds,
            id="discovery",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        if self.notifier is not None:
            # Delivery first: messages a crash left in the outbox go out without waiting.
            self.notifier.start()
            scheduler.add_job(
                self.notifier.tick,
                "interval",
                seconds=NOTIFY_TICK_SECONDS,
                id="notifications",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        scheduler.start()
        self._scheduler = scheduler

    @property
    def scheduler_running(self) -> bool:
        """Whether the discovery job is scheduled."""
        return self._scheduler is not None and bool(self._scheduler.running)

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
        if not self.wait_idle(grace):
            log.warning(
                "evaluation still running after the %.0f s grace period: stopping it; "
                "it will be re-run at the next start",
                grace,
            )
            self._cancel.set()
        self._pool.shutdown(wait=True)
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

    # -- discovery ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Scan every run for newly complete checkpoints, then dispatch evaluations."""
        errors: list[str] = []
        for run in self.config.runs:
            try:
                errors += self._discover(run)
            except Exception as exc:  # one run's failure must not stop the others, nor the job
                errors.append(f"run {run.name}: {type(exc).__name__}: {exc}")
                log.exception(
                    "discovery failed; retrying at the next poll", extra=fields(run=run.name)
                )
        self.last_poll_error = "; ".join(errors) or None
        self.last_poll_at = self.clock()
        self.dispatch()

    def _discover(self, run: RunConfig) -> list[str]:
        """Record the run's newly complete checkpoints; return one message per one that failed."""
        errors: list[str] = []
        now = self.clock()
        run_id = self._run_ids[run.name]
        known = self.store.queue.checkpoint_names(run_id)
        # Known checkpoints are not walked again: a poll stays cheap however long the run.
        found = scan_run(
            run.directory,
            run.checkpoint_glob,
            run.ready_marker,
            run.settle_seconds,
            now=now,
            skip=known,
        )
        for ckpt in found:
            if not ckpt.complete:
                continue
            try:
                self._record_checkpoint(run, run_id, ckpt, now)
            except Exception as exc:  # one bad checkpoint must not hide the ones after it
                errors.append(f"run {run.name}: {ckpt.name!r}: {type(exc).__name__}: {exc}")
                if (run.name, ckpt.name) not in self._bad_checkpoints:
                    self._bad_checkpoints.add((run.name, ckpt.name))
                    log.warning(
                        "cannot record checkpoint %r (%s: %s); it is retried at every poll",
                        ckpt.name,
                        type(exc).__name__,
                        exc,
                        extra=fields(run=run.name),
                    )
        present = {p.name for p in checkpoint_dirs(run.directory, run.checkpoint_glob)}
        for row in self.store.queue.checkpoints(run.name, states=["discovered"]):
            if row.state_reason == FN_RETRY:
                continue  # evaluated already: its audit needs the mined set, not the directory
            if row.name not in present and not Path(row.path).exists():
                self._skip(row, "deleted", "the checkpoint was deleted before its evaluation")
        return errors

    def _record_checkpoint(
        self, run: RunConfig, run_id: int, ckpt: FoundCheckpoint, now: float
    ) -> None:
        """Read one complete checkpoint's mining metadata and add it to the store."""
        mining, mining_error = None, None
        try:
            mining = read_mining_metadata(ckpt.path, run.directory, run.mining_metadata)
        except RecallwatchError as exc:
            mining_error = str(exc)
            log.warning(
                "unreadable mining metadata: %s",
                exc,
                extra=fields(run=run.name, checkpoint=ckpt.name),
            )
        added = self.store.queue.add_checkpoint(
            run_id,
            name=ckpt.name,
            path=str(ckpt.path),
            step=ckpt.step,
            eval_key=self._eval_key(run.name),
            completed_at=ckpt.modified_at,
            now=now,
            mining_fingerprint=mining.fingerprint if mining else None,
            mining_content=mining.canonical if mining else None,
            mining_path=str(mining.path) if mining else None,
            mining_error=mining_error,
        )
        if added is not None:
            log.info(
                "discovered a complete checkpoint",
                extra=fields(
                    run=run.name,
                    checkpoint=ckpt.name,
                    step=ckpt.step,
                    mining_fingerprint=(mining.fingerprint[:12] if mining else None),
                ),
            )

    def _skip(self, row: CheckpointRow, reason: str, message: str) -> None:
        if self.store.queue.set_state(
            row.id,
            "skipped",
            self.clock(),
            reason=reason,
            message=message,
            expect=["discovered", "evaluating"],
        ):
            log.info(
                "skipped: %s",
                message,
                extra=fields(run=row.run, checkpoint=row.name, step=row.step, reason=reason),
            )

    # -- the queue ----------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Start evaluations of queued checkpoints while slots are free."""
        with self._lock:
            if self._stopping:
                return
            free = self.config.evaluation.concurrency - len(self._inflight)
            for row in self._next(free):
                if not self.store.queue.set_state(
                    row.id, "evaluating", self.clock(), expect=["discovered"]
                ):
                    continue
                self._inflight[row.id] = self._pool.submit(self._evaluate_and_continue, row)

    def _next(self, slots: int) -> list[CheckpointRow]:
        if slots <= 0:
            return []
        queues: list[list[CheckpointRow]] = []
        for run in self.config.runs:
            pending = [
                r
                for r in self.store.queue.checkpoints(run.name, states=["discovered"])
                if r.id not in self._inflight
            ]
            if self.config.evaluation.policy == "latest_only":
                # An audit retry re-runs an evaluated checkpoint: never supersede it.
                retries = [r for r in pending if r.state_reason == FN_RETRY]
                fresh = [r for r in pending if r.state_reason != FN_RETRY]
                for old in fresh[:-1]:
                    self._skip(old, "superseded", "a newer checkpoint was queued (latest_only)")
                pending = retries + fresh[-1:]
            queues.append(pending)
        chosen: list[CheckpointRow] = []
        depth = 0
        while len(chosen) < slots and any(len(q) > depth for q in queues):
            chosen += [q[depth] for q in queues if len(q) > depth][: slots - len(chosen)]
            depth += 1
        return chosen

    def _evaluate_and_continue(self, row: CheckpointRow) -> None:
        try:
            self.evaluate_checkpoint(row)
        except Exception as exc:
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
        finally:
            self._after(row)
            # Free the slot and take the next checkpoint under one lock, so that "idle" is never
            # observed between two evaluations of a backfill.
            with self._idle:
                self._inflight.pop(row.id, None)
                try:
                    self.dispatch()
                finally:
                    self._idle.notify_all()

    def _after(self, row: CheckpointRow) -> None:
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

    # -- one checkpoint -----------------------------------------------------------------------

    def evaluate_checkpoint(self, row: CheckpointRow) -> None:
        """Evaluate a checkpoint on every held-out set, store the results and its final state."""
        run = self.config.run(row.run)
        if not Path(row.path).is_dir() and row.state_reason != FN_RETRY:
            self._skip(row, "deleted", "the checkpoint was deleted before its evaluation")
            return
        for heldout in self.config.heldout:
            if not self._evaluate_on(row, run, heldout):
                return  # failed, skipped or re-queued: the state says which
        if self._estimate_false_negatives(run, row):
            self.store.queue.set_state(row.id, "evaluated", self.clock())

    def _evaluate_on(self, row: CheckpointRow, run: RunConfig, heldout: HeldoutConfig) -> bool:
        """Evaluate on one held-out set (unless already done under its key); False to stop."""
        encoder = self.config.encoder_for(run)
        key = self._keys[run.name][heldout.dataset]
        if self.store.results.done_evaluation(row.id, heldout.dataset, encoder.spec, key) is not None:
            return True  # idempotent: already evaluated under this key
        job = Job(
            checkpoint=row.path,
            encoder=encoder.model_dump(mode="json"),
            heldout=str(heldout.path),
            split=heldout.split,
            relevance_level=heldout.relevance_level,
            ks=list(self.config.evaluation.ks),
            similarity=self.config.evaluation.similarity,
            shard_rows=self.config.evaluation.shard_rows,
        )
        where = fields(run=run.name, checkpoint=row.name, step=row.step, dataset=heldout.dataset)
        started, t0 = self.clock(), time.monotonic()
        try:
            result = self.runner(job, self.config.evaluation.timeout_seconds, self._cancel)
        except Interrupted:
            self.store.queue.set_state(row.id, "discovered", self.clock(), reason="interrupted")
            log.warning("evaluation stopped by shutdown; it will be re-run", extra=where)
            return False
        except EvaluationError as exc:
            if not Path(row.path).is_dir():
                self._skip(row, "deleted", "the checkpoint was deleted during its evaluation")
                return False
            self.store.results.record_failure(
                row.id,
                dataset=heldout.dataset,
                encoder=encoder.spec,
                config_hash=key,
                started_at=started,
                finished_at=self.clock(),
                reason=exc.reason,
                message=exc.message,
            )
            where["fields"]["reason"] = exc.reason
            log.warning("evaluation failed: %s", exc.message, extra=where)
            return False
        duration = time.monotonic() - t0
        self.store.results.record_evaluation(
            NewEvaluation(
                checkpoint_id=row.id,
                dataset=heldout.dataset,
                encoder=encoder.spec,
                config_hash=key,
                started_at=started,
                finished_at=self.clock(),
                metrics=result.metrics,
                timings=result.timings,
                counts=result.counts,
                outcomes=result.outcomes,
            ),
            self._run_ids[run.name],
        )
        where["fields"].update(
            duration_seconds=round(duration, 3),
            **_headline(result.metrics, self.config.evaluation.ks),
        )
        log.info("evaluated", extra=where)
        return True

    def _estimate_false_negatives(self, run: RunConfig, row: CheckpointRow) -> bool:
        """Attach the FN estimate of the checkpoint's mined set; False when shutdown stopped it."""
        fn_config = self.config.false_negatives
        if fn_config is None:
            return True
        where = fields(run=run.name, checkpoint=row.name, step=row.step)
        if row.mining_fingerprint is None:
            log.info(
                "false-negative estimate skipped: the checkpoint has no mining metadata",
                extra=where,
            )
            return True
        mining = self.store.queue.mining_content(row.mining_fingerprint)
        mined = mining.get(fn_config.mined_set_key) if isinstance(mining, dict) else None
        if not isinstance(mined, str) or not isinstance(mining, dict):
            log.info(
                "false-negative estimate skipped: the mining metadata has no %r",
                fn_config.mined_set_key,
                extra=where,
            )
            return True
        config_hash = _fn_config_hash(fn_config)
        estimate = self.store.results.fn_estimate_for(row.mining_fingerprint, config_hash)
        if estimate is None:  # a mined set not audited yet: audit it once
            job = fn_job(fn_config, run.directory / mined, mining)
            t0 = time.monotonic()
            try:
                estimate = self.fn_runner(job, fn_config.timeout_seconds, self._cancel)
            except Interrupted:
                self.store.queue.set_state(row.id, "discovered", self.clock(), reason="interrupted")
                log.warning("false-negative audit stopped by shutdown; re-run later", extra=where)
                return False
            except EvaluationError as exc:
                # Counted and kept; the next checkpoint of this mined set (or --retry-failed)
                # audits it again. The recall stays right: the checkpoint is still evaluated.
                message = redact_specs(exc.message, fn_config.oracles)
                self.store.results.record_fn_audit_failure(
                    row.id,
                    self._run_ids[run.name],
                    fingerprint=row.mining_fingerprint,
                    config_hash=config_hash,
                    reason=exc.reason,
                    message=message,
                    now=self.clock(),
                )
                where["fields"]["reason"] = exc.reason
                log.warning(
                    "false-negative estimate failed: %s; retried with the next checkpoint "
                    "of this mined set",
                    message,
                    extra=where,
                )
                return True
            estimate = _redacted_estimate(estimate, fn_config.oracles)
            seconds = time.monotonic() - t0
            self.store.results.record_stage(
                self._run_ids[run.name], "false_negatives", seconds, self.clock()
            )
            where["fields"].update(
                mined_set=mined,
                false_negative_ratio=round(estimate.estimate, 4),
                lower=round(estimate.lower, 4),
                upper=round(estimate.upper, 4),
                judged=estimate.sample_size,
                oracle=estimate.oracle,
                duration_seconds=round(seconds, 3),
            )
            log.info("false-negative rate estimated", extra=where)
        self.store.results.record_fn_estimate(
            row.id, row.mining_fingerprint, config_hash, estimate, self.clock()
        )
        return True

    # -- helpers --------------------------------------------------------------------------------

    def _eval_key(self, run: str) -> str:
        return json.dumps(self._keys[run], sort_keys=True, separators=(",", ":"))

    def readiness(self) -> dict[str, Any]:
        """The checks behind ``/readyz``: store open, scheduler running, last poll recent."""
        now = self.clock()
        limit = 2 * self.config.poll_interval_seconds + 10.0
        recent = self.last_poll_at is not None and now - self.last_poll_at <= limit
        checks = {
            "store": self.store.ping(),
            "scheduler": self.scheduler_running,
            "recent_poll": recent,
        }
        return {
            "ready": all(checks.values()),
            "checks": checks,
            "last_poll_at": self.last_poll_at,
            "last_poll_error": self.last_poll_error,
            "evaluating": len(self._inflight),
        }


def _headline(metrics: dict[str, dict[int, float]], ks: list[int]) -> dict[str, float]:
    out = {
        f"recall@{k}": round(metrics["recall"][k], 4) for k in ks if k in metrics.get("recall", {})
    }
    k10 = 10 if 10 in ks else ks[-1]
    if k10 in metrics.get("ndcg", {}):
        out[f"ndcg@{k10}"] = round(metrics["ndcg"][k10], 4)
    return out
