"""Evaluate a checkpoint on one held-out set in a child process, and store the outcome.

``Evaluator.evaluate_on`` is hops 3 and 4 of the daemon's pipeline (evaluated, stored): it skips a
held-out set already evaluated under the same idempotency key, runs the evaluation through the
daemon's runner (``runner.run_isolated``: a child process, killed at the timeout), and stores the
result in one transaction (``store.results.record_evaluation``) or the failure with its bounded
reason (``record_failure``). A checkpoint deleted during its evaluation is skipped, not failed;
one stopped by shutdown is queued again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from recallwatch.config import Config, EvaluationConfig, HeldoutConfig, RunConfig
from recallwatch.daemon.early import EarlyPass
from recallwatch.daemon.runner import EvaluationError, Interrupted, Job, Runner
from recallwatch.daemon.scheduling import skip
from recallwatch.encoders import kind_for
from recallwatch.evaluation.distributed.cluster import CLUSTER_UNAVAILABLE
from recallwatch.failpoints import HOLD_EXACT, hold_here
from recallwatch.logs import fields
from recallwatch.store import CheckpointRow, EarlyVerdict, NewEvaluation, Store

__all__ = [
    "RETRIED_REASONS",
    "STORE_UNAVAILABLE",
    "Evaluator",
    "backend_options",
    "dataset_key",
    "requeue_unavailable",
]

#: The failure reason of a checkpoint whose evaluation could not be stored (disk full, I/O error):
#: recorded once the store can be written again, and the checkpoint queued again.
STORE_UNAVAILABLE = "store_unavailable"

#: Failures retried at each poll: their cause is outside the checkpoint and passes.
RETRIED_REASONS = frozenset({CLUSTER_UNAVAILABLE, STORE_UNAVAILABLE})

#: The daemon's log: one logger name for its whole pipeline.
log = logging.getLogger("recallwatch.daemon")


def backend_options(evaluation: EvaluationConfig) -> dict[str, Any]:
    """The configured backend (``kind``) and its options: its section of ``evaluation``, if any.

    A backend's options are the section named after it (``evaluation.ray``); ``local`` has none.
    """
    section = getattr(evaluation, evaluation.backend, None)
    options = section.model_dump(mode="json") if isinstance(section, BaseModel) else {}
    return {"kind": evaluation.backend, **options}


class Evaluator:
    """Run one checkpoint's evaluation on one held-out set and record what came of it."""

    def __init__(
        self,
        config: Config,
        store: Store,
        runner: Runner,
        clock: Callable[[], float],
        *,
        on_early: Callable[[CheckpointRow, EarlyVerdict], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.runner = runner
        self.clock = clock
        self.early = EarlyPass(config.evaluation.early, store, runner, clock)
        #: Called with an early warning whose exact pass is about to run (the notifier's
        #: ``after_early``: the ``early_warning`` rule); its errors are logged, never fatal.
        self.on_early = on_early
        #: Early passes that failed since the start (``/readyz`` ``handled``, a counter).
        self.early_failures = 0

    def _early_pass(
        self,
        row: CheckpointRow,
        job: Job,
        dataset: str,
        key: str,
        timeout: float,
        cancel: threading.Event,
    ) -> None:
        """The early pass; whatever goes wrong in it is logged and the exact pass runs.

        A warning is handed to ``on_early`` also when the verdict was stored before (a restart
        during the exact pass): the decision is idempotent, and a crash between the verdict and
        its decision is made up for.
        """
        try:
            verdict = self.early.before(row, job, dataset, key, timeout, cancel)
            if (
                self.on_early is not None
                and verdict is not None
                and verdict.warned
                and verdict.exact is None
            ):
                self.on_early(row, verdict)
        except Interrupted:
            raise
        except Exception:  # the exact pass needs nothing of it: counted and logged
            self.early_failures += 1
            log.exception(
                "the early pass failed; the exact pass follows",
                extra=fields(run=row.run, checkpoint=row.name, dataset=dataset),
            )

    def evaluate_on(
        self,
        row: CheckpointRow,
        run: RunConfig,
        run_id: int,
        heldout: HeldoutConfig,
        key: str,
        cancel: threading.Event,
    ) -> bool:
        """Evaluate on one held-out set and store the result (unless done under its key).

        False to stop: the evaluation failed (recorded), or the checkpoint was skipped or queued
        again.
        """
        encoder = self.config.encoder_for(run)
        done = self.store.results.done_evaluation(row.id, heldout.dataset, encoder.spec, key)
        if done is not None:
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
            backend=backend_options(self.config.evaluation),
            stored_rankings=self.config.evaluation.stored_rankings,
        )
        where = fields(run=run.name, checkpoint=row.name, step=row.step, dataset=heldout.dataset)
        started, t0 = self.clock(), time.monotonic()
        timeout = self.config.evaluation.timeout_seconds
        try:
            # The early pass (pooled upper bound) first; the exact pass always follows.
            self._early_pass(row, job, heldout.dataset, key, timeout, cancel)
            hold_here(HOLD_EXACT, cancel)
            result = self.runner(job, timeout, cancel)
        except Interrupted:
            self.store.queue.set_state(row.id, "discovered", self.clock(), reason="interrupted")
            log.warning("evaluation stopped by shutdown; it will be re-run", extra=where)
            return False
        except EvaluationError as exc:
            if not Path(row.path).is_dir():
                skip(
                    self.store,
                    row,
                    "deleted",
                    "the checkpoint was deleted during its evaluation",
                    self.clock(),
                )
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
            if exc.reason == CLUSTER_UNAVAILABLE:
                log.warning(
                    "evaluation failed: %s; retrying at the next poll", exc.message, extra=where
                )
            else:
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
                precision=result.precision,
                rankings=result.rankings,
                precision_report=(
                    None if result.precision_report is None else result.precision_report.as_json()
                ),
            ),
            run_id,
        )
        self.early.after(row, heldout.dataset, key, result)
        where["fields"].update(
            duration_seconds=round(duration, 3),
            **_headline(result.metrics, self.config.evaluation.ks),
        )
        log.info("evaluated", extra=where)
        return True


def requeue_unavailable(store: Store, run: str, now: float) -> int:
    """Queue again a run's checkpoints that failed because the Ray cluster could not be reached
    (``cluster_unavailable``) or the store could not be written (``store_unavailable``): the daemon
    calls it at each poll, so they are retried then. The failure stays recorded (counted in
    ``recallwatch_evaluation_failures_total``)."""
    retried = 0
    for row in store.queue.checkpoints(run, states=["failed"]):
        if row.state_reason in RETRIED_REASONS:
            retried += store.queue.set_state(
                row.id, "discovered", now, reason="retry", expect=["failed"]
            )
    return retried


def _headline(metrics: dict[str, dict[int, float]], ks: list[int]) -> dict[str, float]:
    out = {
        f"recall@{k}": round(metrics["recall"][k], 4) for k in ks if k in metrics.get("recall", {})
    }
    k10 = 10 if 10 in ks else ks[-1]
    if k10 in metrics.get("ndcg", {}):
        out[f"ndcg@{k10}"] = round(metrics["ndcg"][k10], 4)
    return out


def dataset_key(config: Config, run: RunConfig, heldout: HeldoutConfig) -> str:
    """The idempotency key of evaluating a run's checkpoints on one held-out set.

    It covers everything that changes the numbers (encoder and its options, k list, similarity,
    the held-out set and split), so a checkpoint is never evaluated twice under the same key.
    Where it runs (``device``) and how it batches (``batch_size``) are left out: moving the
    encoder to a GPU must not re-evaluate a run's whole history.
    """
    enc = config.encoder_for(run)
    # precision only where it can change the numbers (st, openvino), and for st not fp32, which
    # every st evaluation before the setting existed used: such keys stay the same.
    uses = kind_for(enc.spec).uses_precision
    same = not uses or (enc.spec == "st" and enc.precision == "fp32")
    doc = {
        "encoder": enc.model_dump(
            mode="json", exclude={"device", "batch_size"} | ({"precision"} if same else set())
        ),
        "ks": config.evaluation.ks,
        "similarity": config.evaluation.similarity,
        "heldout": {
            "path": str(heldout.path),
            "split": heldout.split,
            "relevance_level": heldout.relevance_level,
        },
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
