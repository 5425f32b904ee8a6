"""The false-negative auditor: one FN-rate estimate per mined set, attached to its checkpoints.

``FnAuditor.audit`` runs after a checkpoint's held-out evaluations are stored. The checkpoint's
mining metadata names its mined set (key ``mined_set_key``); a set is audited once per audit
configuration (``config_hash``: the section without the fields that only say how a judge is
reached), in a child process (``runner.estimate_isolated``), and every checkpoint trained on it
gets that estimate. A failed audit is recorded and counted, the checkpoint stays evaluated, and
the set's next checkpoint (or ``--retry-failed``, see ``requeue_failed``) audits it again.

With ``review`` among the oracles (``mining.oracles.review``), the child process opens only the
other judges; with ``review`` alone no child runs: the set's estimate is its reviewed labels'
(``daemon.review_feed``), and a set without labels yet waits for them (no failure is recorded).

HTTP judge URLs may carry credentials: what is stored or logged of an audit (its oracle, its
details, its error message) has each http(s) oracle spec replaced by its redacted form
(``redact_specs``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recallwatch.config import FalseNegativeConfig, RunConfig
from recallwatch.daemon.runner import AuditJob, AuditRunner, EvaluationError, Interrupted
from recallwatch.logs import fields
from recallwatch.mining.audit_spec import AuditSpec
from recallwatch.mining.oracles import redact_url
from recallwatch.mining.oracles.review import judges_besides_review
from recallwatch.store import CheckpointRow, FnEstimate, Store

if TYPE_CHECKING:
    from recallwatch.daemon.review_feed import ReviewFeed

__all__ = ["FnAuditor", "audit_job", "config_hash", "redact_specs"]

#: The daemon's log: one logger name for its whole pipeline.
log = logging.getLogger("recallwatch.daemon")


def config_hash(config: FalseNegativeConfig) -> str:
    """The audit's identity: a set is audited again only when this changes."""
    blob = json.dumps(
        config.model_dump(mode="json", exclude=set(AuditSpec.TRANSPORT_FIELDS)), sort_keys=True
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


def audit_job(config: FalseNegativeConfig, mined_set: Path, mining: dict[str, Any]) -> AuditJob:
    """The audit of a mined set; ``range_min`` of the mining metadata is the rank offset.

    The reviewed labels (``review``) are not the child's to open: its judges are the others.
    """
    offset = mining.get("range_min")
    spec = AuditSpec.of(config)
    judges = judges_besides_review(list(spec.oracles))
    if judges != spec.oracles:
        agree = spec.agree if spec.agree is not None and spec.agree <= len(judges) else None
        spec = spec.model_copy(update={"oracles": judges, "agree": agree})
    return AuditJob(
        mined_set=str(mined_set),
        corpus=str(config.corpus),
        spec=spec,
        rank_offset=offset if isinstance(offset, int) and not isinstance(offset, bool) else 0,
    )


class FnAuditor:
    """Estimate the false-negative rate of each checkpoint's mined set, once per set."""

    def __init__(
        self,
        config: FalseNegativeConfig,
        store: Store,
        runner: AuditRunner,
        clock: Callable[[], float],
        review: ReviewFeed | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.runner = runner
        self.clock = clock
        self.config_hash = config_hash(config)
        #: The reviewed labels' feed, when ``review`` is an oracle (``daemon.review_feed``).
        self.review = review

    def requeue_failed(self, run_id: int, now: float) -> int:
        """Queue again (``audit_only``) each mined set's last failed audit of this config."""
        return self.store.queue.requeue_failed_audits(run_id, self.config_hash, now)

    def audit(
        self, run: RunConfig, run_id: int, row: CheckpointRow, cancel: threading.Event
    ) -> bool:
        """Attach the FN estimate of the checkpoint's mined set; False when shutdown stopped it.

        The estimate is the stored one of its set under this config, else a new audit's. A
        failed audit is recorded (and True returned: the checkpoint's evaluation stands).
        """
        where = fields(run=run.name, checkpoint=row.name, step=row.step)
        if row.mining_fingerprint is None:
            log.info(
                "false-negative estimate skipped: the checkpoint has no mining metadata",
                extra=where,
            )
            return True
        mining = self.store.queue.mining_content(row.mining_fingerprint)
        mined = mining.get(self.config.mined_set_key) if isinstance(mining, dict) else None
        if not isinstance(mined, str) or not isinstance(mining, dict):
            log.info(
                "false-negative estimate skipped: the mining metadata has no %r",
                self.config.mined_set_key,
                extra=where,
            )
            return True
        estimate = self.store.results.fn_estimate_for(row.mining_fingerprint, self.config_hash)
        if estimate is None and self.review is not None and self.review.alone:
            # The people's labels are the only oracle: no child process, no failure to record.
            estimate = self.review.estimate(row.mining_fingerprint)
            if estimate is None or estimate.sample_size == 0:
                log.info(
                    "false-negative estimate waits for review labels (the oracle is 'review'): "
                    "label the set on /review/%s",
                    row.mining_fingerprint,
                    extra=where,
                )
                return True
        audited = False
        if estimate is None:  # a mined set not audited yet: audit it once
            audited = True
            job = audit_job(self.config, run.directory / mined, mining)
            t0 = time.monotonic()
            try:
                estimate = self.runner(job, self.config.timeout_seconds, cancel)
            except Interrupted:
                self.store.queue.set_state(row.id, "discovered", self.clock(), reason="interrupted")
                log.warning("false-negative audit stopped by shutdown; re-run later", extra=where)
                return False
            except EvaluationError as exc:
                # Counted and kept; the next checkpoint of this mined set (or --retry-failed)
                # audits it again. The recall stays right: the checkpoint is still evaluated.
                message = redact_specs(exc.message, self.config.oracles)
                self.store.results.record_fn_audit_failure(
                    row.id,
                    run_id,
                    fingerprint=row.mining_fingerprint,
                    config_hash=self.config_hash,
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
            estimate = _redacted_estimate(estimate, self.config.oracles)
            seconds = time.monotonic() - t0
            self.store.results.record_stage(run_id, "false_negatives", seconds, self.clock())
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
            row.id, row.mining_fingerprint, self.config_hash, estimate, self.clock()
        )
        key = row.mining_fingerprint
        if audited and self.review is not None and self.store.reviews.labels(key):
            # Labels given before the judge's audit finished: combine them with it now.
            self.review.changed(key, now=True)
        return True
