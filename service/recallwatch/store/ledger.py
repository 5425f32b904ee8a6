"""The alert ledger: regression verdicts per checkpoint, and alerts with their episodes.

An alert key (rule, run, ...) has at most one firing alert at a time (a partial unique index);
each firing-to-resolved span is one episode with its own alert id. Alert states and the messages
announcing them are written in one transaction (``apply_alerts``), so a crash never leaves an
alert change without its notifications or the reverse.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from recallwatch.records.alert import Alert
from recallwatch.store.db import Database
from recallwatch.store.outbox import enqueue_messages
from recallwatch.store.rows import AlertRecord, AlertWrite, NewMessage, VerdictRow

__all__ = ["AlertLedger"]


def _verdict_row(row: sqlite3.Row) -> VerdictRow:
    return VerdictRow(
        id=row["id"],
        checkpoint_id=row["checkpoint_id"],
        dataset=row["dataset"],
        metric=row["metric"],
        k=row["k"],
        kind=row["kind"],
        baseline_checkpoint_id=row["baseline_checkpoint_id"],
        value=row["value"],
        baseline_value=row["baseline_value"],
        p_value=row["p_value"],
        regressed=bool(row["regressed"]),
        details=json.loads(row["details"]),
        created_at=row["created_at"],
    )


def _alert_record(row: sqlite3.Row) -> AlertRecord:
    return AlertRecord(
        alert=Alert.from_dict(json.loads(row["document"])),
        key=row["key"],
        rule=row["rule"],
        status=row["status"],
        opened_at=row["opened_at"],
        last_notified_at=row["last_notified_at"],
        resolved_at=row["resolved_at"],
        repeats=row["repeats"],
    )


class AlertLedger:
    """Verdicts and alerts, as the alerting engine writes them and the API reads them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- verdicts ---------------------------------------------------------------------------

    def record_verdict(
        self,
        checkpoint_id: int,
        *,
        dataset: str,
        metric: str,
        k: int,
        kind: str,
        value: float,
        regressed: bool,
        now: float,
        baseline_checkpoint_id: int | None = None,
        baseline_value: float | None = None,
        p_value: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the regression decision for one checkpoint, metric and k (one per kind)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO verdicts(checkpoint_id, dataset, metric, k, kind, "
                "baseline_checkpoint_id, value, baseline_value, p_value, regressed, details, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    checkpoint_id,
                    dataset,
                    metric,
                    k,
                    kind,
                    baseline_checkpoint_id,
                    value,
                    baseline_value,
                    p_value,
                    int(regressed),
                    json.dumps(dict(details or {})),
                    now,
                ),
            )

    def verdicts(self, checkpoint_id: int) -> list[VerdictRow]:
        """The regression verdicts recorded for a checkpoint."""
        rows = self._db.query(
            "SELECT * FROM verdicts WHERE checkpoint_id = ? ORDER BY dataset, metric, k, kind",
            (checkpoint_id,),
        )
        return [_verdict_row(r) for r in rows]

    # -- alerts -----------------------------------------------------------------------------

    def apply_alerts(self, writes: Sequence[AlertWrite], messages: Sequence[NewMessage]) -> None:
        """Store alert states and enqueue their messages in one transaction (idempotent)."""
        with self._db.transaction() as conn:
            for w in writes:
                conn.execute(
                    "INSERT INTO alerts(id, key, rule, run, status, opened_at, last_notified_at, "
                    "resolved_at, repeats, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
                    "last_notified_at = excluded.last_notified_at, "
                    "resolved_at = excluded.resolved_at, repeats = excluded.repeats, "
                    "document = excluded.document",
                    (
                        w.alert.id,
                        w.alert.key.as_string(),
                        w.alert.key.rule,
                        w.alert.run,
                        w.status,
                        w.opened_at,
                        w.notified_at,
                        w.alert.resolved_at,
                        w.repeats,
                        json.dumps(w.alert.as_dict(), allow_nan=False),
                    ),
                )
            enqueue_messages(conn, messages)

    def open_alert(self, key: str) -> AlertRecord | None:
        """The firing alert with this key, if any."""
        rows = self._db.query("SELECT * FROM alerts WHERE key = ? AND status = 'firing'", (key,))
        return _alert_record(rows[0]) if rows else None

    def count_episodes(self, key: str) -> int:
        """How many alert episodes (firing or resolved) a key has had."""
        return int(self._db.query("SELECT COUNT(*) FROM alerts WHERE key = ?", (key,))[0][0])

    def episodes(self, key: str) -> list[AlertRecord]:
        """Every alert episode of a key, firing or resolved, oldest first."""
        rows = self._db.query("SELECT * FROM alerts WHERE key = ? ORDER BY opened_at, id", (key,))
        return [_alert_record(r) for r in rows]

    def open_alerts(self, *, rule: str | None = None, run: str | None = None) -> list[AlertRecord]:
        """Firing alerts, optionally of one rule and run."""
        rows = self._db.query(
            "SELECT * FROM alerts WHERE status = 'firing' AND (:rule IS NULL OR rule = :rule) "
            "AND (:run IS NULL OR run = :run) ORDER BY opened_at, id",
            {"rule": rule, "run": run},
        )
        return [_alert_record(r) for r in rows]

    def alert(self, alert_id: str) -> AlertRecord | None:
        """One alert by id."""
        rows = self._db.query("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return _alert_record(rows[0]) if rows else None

    def alerts(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[AlertRecord]:
        """Alerts, newest first."""
        rows = self._db.query(
            "SELECT * FROM alerts WHERE (:status IS NULL OR status = :status) "
            "ORDER BY opened_at DESC, id LIMIT :limit OFFSET :offset",
            {"status": status, "limit": limit, "offset": offset},
        )
        return [_alert_record(r) for r in rows]

    def count_alerts(self, *, status: str | None = None) -> int:
        """How many alerts there are (in a status)."""
        rows = self._db.query(
            "SELECT COUNT(*) FROM alerts WHERE (:status IS NULL OR status = :status)",
            {"status": status},
        )
        return int(rows[0][0])
