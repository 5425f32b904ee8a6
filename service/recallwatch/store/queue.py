"""The checkpoint queue: runs, checkpoints and their states, and the mining configs they name.

Checkpoint states::

    discovered -> evaluating -> evaluated
        |             |-------> failed
        |             '-------> discovered   (crash or shutdown: re-run)
        '-> skipped   (deleted before evaluation, or superseded under ``latest_only``)

Crash recovery is not automatic: checkpoints a crash left ``evaluating`` stay so until the
daemon's start-up calls ``recover`` (``Daemon.prepare``, before its first poll), which puts them
back to ``discovered``. The re-run skips each held-out set whose result is already stored
(``Results.done_evaluation``), so nothing finished is lost or evaluated twice.

A checkpoint whose false-negative audit failed is queued again with ``audit_only`` set
(``requeue_failed_audits``): its evaluations are stored, so only the audit runs again. The flag
survives ``discovered`` and ``evaluating`` (and recovery) and is cleared when the checkpoint
becomes evaluated, failed or skipped, or when a new evaluation key re-queues it in full.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from recallwatch.store.db import Database
from recallwatch.store.rows import STATES, CheckpointRow, CheckpointState

__all__ = ["CheckpointQueue"]

#: The columns of ``_checkpoint_row``, from ``checkpoints c JOIN runs r ON r.id = c.run_id``.
_COLUMNS = """c.id, r.name AS run, c.name, c.path, c.step, c.state, c.eval_key,
    c.mining_fingerprint, c.mining_error, c.completed_at, c.discovered_at, c.updated_at,
    c.state_reason, c.state_message, c.attempts, c.audit_only"""
_FROM = "FROM checkpoints c JOIN runs r ON r.id = c.run_id"
_OLDEST_FIRST = "ORDER BY c.step IS NULL, c.step, c.name"
_NEWEST_FIRST = "ORDER BY c.step IS NULL, c.step DESC, c.name DESC"
#: States that end an attempt at a checkpoint, and with it any audit-only retry.
_FINAL: tuple[CheckpointState, ...] = ("evaluated", "failed", "skipped")


def _checkpoint_row(row: sqlite3.Row) -> CheckpointRow:
    """A ``CheckpointRow`` from a row selected with ``_COLUMNS``."""
    values = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
    values["audit_only"] = bool(values["audit_only"])
    return CheckpointRow(**values)


class CheckpointQueue:
    """Runs and their checkpoints: discovery, state transitions and re-queueing."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def ensure_run(self, name: str, directory: str, now: float) -> int:
        """The id of run ``name``, created on first use (its directory is kept up to date)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO runs(name, directory, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET directory = excluded.directory",
                (name, directory, now),
            )
            return int(conn.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()[0])

    def add_checkpoint(
        self,
        run_id: int,
        *,
        name: str,
        path: str,
        step: int | None,
        eval_key: str,
        completed_at: float,
        now: float,
        mining_fingerprint: str | None = None,
        mining_content: str | None = None,
        mining_path: str | None = None,
        mining_error: str | None = None,
    ) -> int | None:
        """Record a newly complete checkpoint as ``discovered``; ``None`` if already known."""
        with self._db.transaction() as conn:
            if mining_fingerprint is not None and mining_content is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO mining_configs(fingerprint, content, first_seen_at) "
                    "VALUES (?, ?, ?)",
                    (mining_fingerprint, mining_content, now),
                )
            cur = conn.execute(
                "INSERT OR IGNORE INTO checkpoints(run_id, name, path, step, state, eval_key, "
                "mining_fingerprint, mining_path, mining_error, completed_at, discovered_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'discovered', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    name,
                    path,
                    step,
                    eval_key,
                    mining_fingerprint,
                    mining_path,
                    mining_error,
                    completed_at,
                    now,
                    now,
                ),
            )
            return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid else None

    def checkpoint_names(self, run_id: int) -> set[str]:
        """Names of every checkpoint recorded for a run."""
        rows = self._db.query("SELECT name FROM checkpoints WHERE run_id = ?", (run_id,))
        return {r[0] for r in rows}

    def checkpoint_names_after(self, run_id: int, after: int) -> list[tuple[int, str]]:
        """(id, name) of a run's checkpoints recorded after the one with id ``after``.

        Checkpoints are never deleted nor renamed, so a poller that remembers the names it saw
        and the highest id reads only the new ones (a range of the ``(run_id, id)`` index).
        """
        rows = self._db.query(
            "SELECT id, name FROM checkpoints WHERE run_id = ? AND id > ? ORDER BY id",
            (run_id, after),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def checkpoints(
        self,
        run: str,
        *,
        states: Sequence[str] = STATES,
        newest_first: bool = False,
        limit: int = -1,
        offset: int = 0,
    ) -> list[CheckpointRow]:
        """A run's checkpoints in some states, ordered by step (then name)."""
        marks = ",".join("?" for _ in states)
        order = _NEWEST_FIRST if newest_first else _OLDEST_FIRST
        rows = self._db.query(
            f"SELECT {_COLUMNS} {_FROM} "
            f"WHERE r.name = ? AND c.state IN ({marks}) {order} LIMIT ? OFFSET ?",
            (run, *states, limit, offset),
        )
        return [_checkpoint_row(r) for r in rows]

    def checkpoints_of_mining(
        self, fingerprint: str, *, states: Sequence[str] = ("evaluated",)
    ) -> list[CheckpointRow]:
        """Every checkpoint (of any run) trained on the mining config with this fingerprint."""
        marks = ",".join("?" for _ in states)
        rows = self._db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE c.mining_fingerprint = ? AND c.state IN ({marks}) "
            "ORDER BY c.id",
            (fingerprint, *states),
        )
        return [_checkpoint_row(r) for r in rows]

    def count_checkpoints(self, run: str, *, states: Sequence[str] = STATES) -> int:
        """How many checkpoints of a run are in some states."""
        marks = ",".join("?" for _ in states)
        rows = self._db.query(
            f"SELECT COUNT(*) {_FROM} WHERE r.name = ? AND c.state IN ({marks})",
            (run, *states),
        )
        return int(rows[0][0])

    def checkpoint(self, run: str, name: str) -> CheckpointRow | None:
        """One checkpoint by run and name."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE r.name = ? AND c.name = ?", (run, name)
        )
        return _checkpoint_row(rows[0]) if rows else None

    def checkpoint_by_id(self, checkpoint_id: int) -> CheckpointRow:
        """One checkpoint by id."""
        rows = self._db.query(f"SELECT {_COLUMNS} {_FROM} WHERE c.id = ?", (checkpoint_id,))
        return _checkpoint_row(rows[0])

    def set_state(
        self,
        checkpoint_id: int,
        state: CheckpointState,
        now: float,
        *,
        reason: str | None = None,
        message: str | None = None,
        expect: Sequence[CheckpointState] | None = None,
    ) -> bool:
        """Move a checkpoint to ``state`` (only from ``expect`` states when given).

        Entering ``evaluating`` counts an attempt; entering evaluated, failed or skipped clears
        ``audit_only``.
        """
        sql = (
            "UPDATE checkpoints SET state = ?, state_reason = ?, state_message = ?, "
            "updated_at = ?, attempts = attempts + (? = 'evaluating'), "
            "audit_only = CASE WHEN ? THEN 0 ELSE audit_only END WHERE id = ?"
        )
        params: list[Any] = [state, reason, message, now, state, state in _FINAL, checkpoint_id]
        if expect is not None:
            sql += f" AND state IN ({','.join('?' for _ in expect)})"
            params += list(expect)
        with self._db.transaction() as conn:
            return conn.execute(sql, params).rowcount == 1

    def recover(self, now: float) -> list[CheckpointRow]:
        """Return checkpoints a crash left ``evaluating`` to ``discovered``; list them.

        Called by the daemon at start-up (not by ``Store.open``); ``audit_only`` is kept.
        """
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} {_FROM} WHERE c.state = 'evaluating'"
            ).fetchall()
            conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'interrupted', "
                "updated_at = ? WHERE state = 'evaluating'",
                (now,),
            )
        return [_checkpoint_row(r) for r in rows]

    def rekey(self, run_id: int, eval_key: str, now: float) -> int:
        """Re-queue, in full, a run's evaluated or queued checkpoints whose evaluation key changed.

        Failed ones too. Their stored evaluations no longer count, so ``audit_only`` is cleared.
        """
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'config_changed', "
                "audit_only = 0, eval_key = ?, updated_at = ? WHERE run_id = ? AND eval_key != ? "
                "AND state IN ('evaluated', 'failed', 'discovered')",
                (eval_key, now, run_id, eval_key),
            ).rowcount

    def requeue_failed(self, run_id: int, now: float) -> int:
        """Queue a run's failed checkpoints again (after the cause was fixed); their count."""
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'retry', "
                "state_message = NULL, updated_at = ? WHERE run_id = ? AND state = 'failed'",
                (now, run_id),
            ).rowcount

    def requeue_failed_audits(self, run_id: int, config_hash: str, now: float) -> int:
        """Queue again, per mined set still without an estimate, its last failed audit's checkpoint.

        Its held-out evaluations are stored, so the re-run only repeats the audit: the checkpoint
        is queued with ``audit_only`` set.
        """
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', audit_only = 1, state_reason = NULL, "
                "state_message = NULL, updated_at = :now WHERE state = 'evaluated' AND id IN ("
                "SELECT f.checkpoint_id FROM fn_audit_failures f "
                "WHERE f.run_id = :run AND f.config_hash = :hash AND f.id = ("
                "SELECT MAX(g.id) FROM fn_audit_failures g WHERE g.run_id = f.run_id "
                "AND g.mining_fingerprint = f.mining_fingerprint AND g.config_hash = :hash) "
                "AND NOT EXISTS (SELECT 1 FROM fn_estimates e "
                "WHERE e.mining_fingerprint = f.mining_fingerprint AND e.config_hash = :hash))",
                {"now": now, "run": run_id, "hash": config_hash},
            ).rowcount

    def mining_content(self, fingerprint: str) -> Any:
        """The mining metadata with this fingerprint (parsed JSON), or ``None``."""
        rows = self._db.query(
            "SELECT content FROM mining_configs WHERE fingerprint = ?", (fingerprint,)
        )
        return json.loads(rows[0][0]) if rows else None
