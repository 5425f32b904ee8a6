"""Results: evaluations (with their per-query outcomes), stage timings, false-negative estimates
and failed false-negative audits.

Idempotency: a finished evaluation is unique per (checkpoint, held-out set, encoder, config
hash), enforced by a partial unique index; the daemon looks it up (``done_evaluation``) before
evaluating, so a re-run after a crash skips what is stored. An evaluation's result and its stage
timings are one transaction.

Metric ``k`` keys are ``int`` in Python and strings in the stored JSON (``{"recall": {"10": ..}}``).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from recallwatch.store.db import Database
from recallwatch.store.rows import (
    EvaluationRow,
    FnAuditFailure,
    FnBucket,
    FnEstimate,
    NewEvaluation,
)

__all__ = [
    "Results",
    "fn_estimate_row",
    "pack_outcomes",
    "pack_rankings",
    "unpack_outcomes",
    "unpack_rankings",
]


def pack_outcomes(outcomes: Mapping[str, Mapping[str, int]]) -> bytes:
    """Compress per-query outcomes (query -> relevant doc -> rank) for storage."""
    return zlib.compress(json.dumps(outcomes, separators=(",", ":")).encode(), 6)


def unpack_outcomes(blob: bytes) -> dict[str, dict[str, int]]:
    """Inverse of ``pack_outcomes``."""
    value: dict[str, dict[str, int]] = json.loads(zlib.decompress(blob))
    return value


def pack_rankings(rankings: Mapping[str, Sequence[str]]) -> bytes:
    """Compress per-query rankings (query -> document ids, best first) for storage."""
    doc = {q: list(ids) for q, ids in rankings.items()}
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)


def unpack_rankings(blob: bytes) -> dict[str, list[str]]:
    """Inverse of ``pack_rankings``."""
    value: dict[str, list[str]] = json.loads(zlib.decompress(blob))
    return value


def _metrics_json(metrics: Mapping[str, Mapping[int, float]]) -> str:
    return json.dumps({m: {str(k): v for k, v in by_k.items()} for m, by_k in metrics.items()})


def _metrics_from_json(text: str | None) -> dict[str, dict[int, float]]:
    stored: dict[str, dict[str, float]] = json.loads(text or "{}")
    return {m: {int(k): v for k, v in by_k.items()} for m, by_k in stored.items()}


def _evaluation_row(row: sqlite3.Row) -> EvaluationRow:
    return EvaluationRow(
        id=row["id"],
        checkpoint_id=row["checkpoint_id"],
        dataset=row["dataset"],
        encoder=row["encoder"],
        config_hash=row["config_hash"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        metrics=_metrics_from_json(row["metrics"]),
        timings=json.loads(row["timings"] or "{}"),
        counts=json.loads(row["counts"] or "{}"),
        reason=row["reason"],
        message=row["message"],
        precision=row["precision"],
        precision_report=_json_or_none(row["precision_report"]),
    )


def _json_or_none(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def fn_estimate_row(row: sqlite3.Row) -> FnEstimate:
    """An ``FnEstimate`` from a row of ``fn_estimates``."""
    return FnEstimate(
        oracle=row["oracle"],
        sample_size=row["sample_size"],
        false_negatives=row["false_negatives"],
        estimate=row["estimate"],
        lower=row["lower"],
        upper=row["upper"],
        random_estimate=row["random_estimate"],
        amplification=row["amplification"],
        buckets=tuple(FnBucket(**b) for b in json.loads(row["buckets"])),
        details=json.loads(row["details"]),
        source=row["source"],
    )


class Results:
    """What evaluating and auditing checkpoints produced."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- evaluations ------------------------------------------------------------------------

    def done_evaluation(
        self, checkpoint_id: int, dataset: str, encoder: str, config_hash: str
    ) -> int | None:
        """The id of the finished evaluation with this idempotency key, if any."""
        rows = self._db.query(
            "SELECT id FROM evaluations WHERE checkpoint_id = ? AND dataset = ? AND encoder = ? "
            "AND config_hash = ? AND status = 'done'",
            (checkpoint_id, dataset, encoder, config_hash),
        )
        return int(rows[0][0]) if rows else None

    def record_evaluation(self, ev: NewEvaluation, run_id: int) -> int:
        """Store a finished evaluation and its stage timings in one transaction."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO evaluations(checkpoint_id, dataset, encoder, config_hash, status, "
                "started_at, finished_at, metrics, timings, counts, outcomes, precision, "
                "precision_report) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ev.checkpoint_id,
                    ev.dataset,
                    ev.encoder,
                    ev.config_hash,
                    ev.started_at,
                    ev.finished_at,
                    _metrics_json(ev.metrics),
                    json.dumps(dict(ev.timings)),
                    json.dumps(dict(ev.counts)),
                    pack_outcomes(ev.outcomes),
                    ev.precision,
                    None if ev.precision_report is None else json.dumps(dict(ev.precision_report)),
                ),
            )
            evaluation_id = int(cur.lastrowid or 0)
            if ev.rankings:
                conn.execute(
                    "INSERT INTO evaluation_rankings(evaluation_id, depth, rankings) "
                    "VALUES (?, ?, ?)",
                    (
                        evaluation_id,
                        max(len(ids) for ids in ev.rankings.values()),
                        pack_rankings(ev.rankings),
                    ),
                )
            conn.executemany(
                "INSERT INTO stage_timings(run_id, stage, seconds, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, stage, secs, ev.finished_at) for stage, secs in ev.timings.items()],
            )
            return evaluation_id

    def record_failure(
        self,
        checkpoint_id: int,
        *,
        dataset: str,
        encoder: str,
        config_hash: str,
        started_at: float,
        finished_at: float,
        reason: str,
        message: str,
    ) -> None:
        """Store a failed evaluation and mark its checkpoint ``failed``, in one transaction."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO evaluations(checkpoint_id, dataset, encoder, config_hash, status, "
                "started_at, finished_at, reason, message) "
                "VALUES (?, ?, ?, ?, 'failed', ?, ?, ?, ?)",
                (
                    checkpoint_id,
                    dataset,
                    encoder,
                    config_hash,
                    started_at,
                    finished_at,
                    reason,
                    message,
                ),
            )
            conn.execute(
                "UPDATE checkpoints SET state = 'failed', state_reason = ?, state_message = ?, "
                "audit_only = 0, updated_at = ? WHERE id = ?",
                (reason, message, finished_at, checkpoint_id),
            )

    def evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        """Every evaluation of a checkpoint, oldest first."""
        rows = self._db.query(
            "SELECT * FROM evaluations WHERE checkpoint_id = ? ORDER BY id", (checkpoint_id,)
        )
        return [_evaluation_row(r) for r in rows]

    def current_evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        """The finished evaluations of a checkpoint under its current evaluation key."""
        rows = self._db.query(
            "SELECT e.* FROM evaluations e JOIN checkpoints c ON c.id = e.checkpoint_id "
            "WHERE e.checkpoint_id = ? AND e.status = 'done' "
            "AND e.config_hash = json_extract(c.eval_key, '$.\"' || e.dataset || '\"') "
            "ORDER BY e.dataset",
            (checkpoint_id,),
        )
        return [_evaluation_row(r) for r in rows]

    def outcomes(self, evaluation_id: int) -> dict[str, dict[str, int]]:
        """The per-query outcomes of a finished evaluation."""
        rows = self._db.query("SELECT outcomes FROM evaluations WHERE id = ?", (evaluation_id,))
        return unpack_outcomes(rows[0][0]) if rows and rows[0][0] is not None else {}

    def rankings(self, evaluation_id: int) -> dict[str, list[str]]:
        """The stored top-K document ids per query of an evaluation (empty when none stored)."""
        rows = self._db.query(
            "SELECT rankings FROM evaluation_rankings WHERE evaluation_id = ?", (evaluation_id,)
        )
        return unpack_rankings(rows[0][0]) if rows else {}

    def rankings_depth(self, evaluation_id: int) -> int:
        """How many documents per query an evaluation's stored rankings hold (0: none)."""
        rows = self._db.query(
            "SELECT depth FROM evaluation_rankings WHERE evaluation_id = ?", (evaluation_id,)
        )
        return int(rows[0][0]) if rows else 0

    def record_stage(self, run_id: int, stage: str, seconds: float, now: float) -> None:
        """Record the duration of a stage outside an evaluation (e.g. false_negatives)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO stage_timings(run_id, stage, seconds, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (run_id, stage, seconds, now),
            )

    # -- false negatives --------------------------------------------------------------------

    def record_fn_estimate(
        self,
        checkpoint_id: int,
        fingerprint: str | None,
        config_hash: str,
        est: FnEstimate,
        now: float,
        *,
        keep_history: bool = False,
    ) -> None:
        """Store the false-negative estimate attached to a checkpoint.

        An audit's estimate replaces the checkpoint's earlier audit estimate of this config;
        ``keep_history`` (and any other source, ``review``) adds a row instead: the history of a
        set's estimates as labels arrive. The latest row of a checkpoint is its estimate
        (``fn_estimate``).
        """
        row = {
            "checkpoint_id": checkpoint_id,
            "mining_fingerprint": fingerprint,
            "config_hash": config_hash,
            "oracle": est.oracle,
            "sample_size": est.sample_size,
            "false_negatives": est.false_negatives,
            "estimate": est.estimate,
            "lower": est.lower,
            "upper": est.upper,
            "random_estimate": est.random_estimate,
            "amplification": est.amplification,
            "buckets": json.dumps([b.__dict__ for b in est.buckets]),
            "details": json.dumps(dict(est.details)),
            "created_at": now,
            "source": est.source,
        }
        with self._db.transaction() as conn:
            if est.source == "audit" and not keep_history:
                conn.execute(
                    "DELETE FROM fn_estimates WHERE checkpoint_id = ? AND config_hash = ? "
                    "AND source = 'audit'",
                    (checkpoint_id, config_hash),
                )
            conn.execute(
                f"INSERT INTO fn_estimates({', '.join(row)}) "
                f"VALUES ({', '.join(':' + k for k in row)})",
                row,
            )

    def fn_estimate_for(self, fingerprint: str, config_hash: str) -> FnEstimate | None:
        """A stored estimate of the mined set with this fingerprint, to reuse across checkpoints."""
        rows = self._db.query(
            "SELECT * FROM fn_estimates WHERE mining_fingerprint = ? AND config_hash = ? "
            "ORDER BY id DESC LIMIT 1",
            (fingerprint, config_hash),
        )
        return fn_estimate_row(rows[0]) if rows else None

    def fn_estimate(self, checkpoint_id: int) -> FnEstimate | None:
        """The latest estimate attached to a checkpoint."""
        rows = self._db.query(
            "SELECT * FROM fn_estimates WHERE checkpoint_id = ? ORDER BY id DESC LIMIT 1",
            (checkpoint_id,),
        )
        return fn_estimate_row(rows[0]) if rows else None

    def fn_estimate_history(self, checkpoint_id: int) -> list[tuple[float, FnEstimate]]:
        """Every estimate attached to a checkpoint with when it was stored, oldest first."""
        rows = self._db.query(
            "SELECT * FROM fn_estimates WHERE checkpoint_id = ? ORDER BY id", (checkpoint_id,)
        )
        return [(float(r["created_at"]), fn_estimate_row(r)) for r in rows]

    def fn_audit_estimate_for(self, fingerprint: str, config_hash: str) -> FnEstimate | None:
        """The newest estimate of this mined set that its audit's oracles made (not people)."""
        rows = self._db.query(
            "SELECT * FROM fn_estimates WHERE mining_fingerprint = ? AND config_hash = ? "
            "AND source = 'audit' ORDER BY id DESC LIMIT 1",
            (fingerprint, config_hash),
        )
        return fn_estimate_row(rows[0]) if rows else None

    def record_fn_audit_failure(
        self,
        checkpoint_id: int,
        run_id: int,
        *,
        fingerprint: str,
        config_hash: str,
        reason: str,
        message: str,
        now: float,
    ) -> None:
        """Record a failed false-negative audit of a checkpoint's mined set."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO fn_audit_failures(run_id, checkpoint_id, mining_fingerprint, "
                "config_hash, reason, message, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, checkpoint_id, fingerprint, config_hash, reason, message, now),
            )

    def fn_audit_failure(self, checkpoint_id: int) -> FnAuditFailure | None:
        """The latest failed audit of a checkpoint, if any."""
        rows = self._db.query(
            "SELECT reason, message, failed_at FROM fn_audit_failures WHERE checkpoint_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (checkpoint_id,),
        )
        if not rows:
            return None
        return FnAuditFailure(
            reason=rows[0]["reason"], message=rows[0]["message"], failed_at=rows[0]["failed_at"]
        )
