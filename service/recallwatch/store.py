"""SQLite persistence (WAL): runs, checkpoints, evaluations, FN estimates, verdicts, alerts.

Crash safety comes from three rules. Every write is one transaction (a failed ``COMMIT`` is rolled
back, so the connection is never left inside a transaction), so after ``kill -9`` the store holds
either the whole of a write or none of it. An evaluation's result (with its stage timings) is one
such write; the checkpoint becomes ``evaluated`` in a later one, only after every held-out set and
the false-negative audit. Checkpoints left ``evaluating`` by a crash go back to ``discovered`` on
the next open (``recover``) and are run again, and the re-run skips each held-out set whose result
is already stored (``done_evaluation``, looked up before evaluating), so nothing finished is lost
or evaluated twice.

Idempotency: a finished evaluation is unique per (checkpoint, held-out set, encoder, config hash),
enforced by a partial unique index.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes version i to i + 1
and runs in one transaction at open. Add a migration, never edit a released one.

Checkpoint states::

    discovered -> evaluating -> evaluated
        |             |-------> failed
        |             '-------> discovered   (crash or shutdown: re-run)
        '-> skipped   (deleted before evaluation, or superseded under ``latest_only``)
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recallwatch.alerting.model import Alert
from recallwatch.errors import RecallwatchError
from recallwatch.notify.messages import AttemptResult, MessageState, OutboxMessage

__all__ = [
    "MIGRATIONS",
    "AlertRecord",
    "AlertWrite",
    "CheckpointRow",
    "EvaluationRow",
    "FnBucket",
    "FnEstimate",
    "NewEvaluation",
    "NewMessage",
    "RunSummary",
    "Store",
    "StoreError",
    "pack_outcomes",
    "unpack_outcomes",
]

CheckpointState = Literal["discovered", "evaluating", "evaluated", "failed", "skipped"]
STATES: tuple[CheckpointState, ...] = ("discovered", "evaluating", "evaluated", "failed", "skipped")

MIGRATIONS: list[list[str]] = [
    # 0 -> 1: the initial schema.
    [
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            directory TEXT NOT NULL,
            created_at REAL NOT NULL)""",
        """CREATE TABLE mining_configs (
            fingerprint TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            first_seen_at REAL NOT NULL)""",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            step INTEGER,
            state TEXT NOT NULL CHECK (state IN
                ('discovered', 'evaluating', 'evaluated', 'failed', 'skipped')),
            eval_key TEXT NOT NULL,
            mining_fingerprint TEXT REFERENCES mining_configs(fingerprint),
            mining_path TEXT,
            mining_error TEXT,
            completed_at REAL NOT NULL,
            discovered_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            state_reason TEXT,
            state_message TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (run_id, name))""",
        "CREATE INDEX checkpoints_by_state ON checkpoints(state, run_id)",
        """CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            dataset TEXT NOT NULL,
            encoder TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            metrics TEXT,
            timings TEXT,
            counts TEXT,
            outcomes BLOB,
            reason TEXT,
            message TEXT)""",
        """CREATE UNIQUE INDEX evaluations_once
            ON evaluations(checkpoint_id, dataset, encoder, config_hash) WHERE status = 'done'""",
        """CREATE TABLE stage_timings (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            stage TEXT NOT NULL,
            seconds REAL NOT NULL,
            recorded_at REAL NOT NULL)""",
        """CREATE TABLE fn_estimates (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            mining_fingerprint TEXT,
            config_hash TEXT NOT NULL,
            oracle TEXT NOT NULL,
            sample_size INTEGER NOT NULL,
            false_negatives INTEGER NOT NULL,
            estimate REAL NOT NULL,
            lower REAL NOT NULL,
            upper REAL NOT NULL,
            random_estimate REAL,
            amplification REAL,
            buckets TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (checkpoint_id, config_hash))""",
        # The regression decision per checkpoint (written by the alerting code).
        """CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            dataset TEXT NOT NULL,
            metric TEXT NOT NULL,
            k INTEGER NOT NULL,
            kind TEXT NOT NULL,
            baseline_checkpoint_id INTEGER REFERENCES checkpoints(id),
            value REAL NOT NULL,
            baseline_value REAL,
            p_value REAL,
            regressed INTEGER NOT NULL,
            details TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (checkpoint_id, dataset, metric, k, kind))""",
    ],
    # 1 -> 2: alerts and the notification outbox (written by the alerting code).
    [
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL,
            rule TEXT NOT NULL,
            run TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
            opened_at REAL NOT NULL,
            last_notified_at REAL NOT NULL,
            resolved_at REAL,
            repeats INTEGER NOT NULL DEFAULT 0,
            document TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE status = 'firing'",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            alert_id TEXT NOT NULL REFERENCES alerts(id),
            channel TEXT NOT NULL,
            rule TEXT NOT NULL,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_attempt_at REAL,
            last_status INTEGER,
            last_error TEXT,
            delivered_at REAL,
            UNIQUE (message_id, channel))""",
        "CREATE INDEX outbox_by_channel ON outbox(channel, state, id)",
        "CREATE INDEX outbox_by_alert ON outbox(alert_id, id)",
    ],
    # 2 -> 3: failed false-negative audits (counted, retried on the next checkpoint of the set).
    [
        """CREATE TABLE fn_audit_failures (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
            mining_fingerprint TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            failed_at REAL NOT NULL)""",
        "CREATE INDEX fn_audit_failures_by_set ON fn_audit_failures(mining_fingerprint, id)",
    ],
    # 3 -> 4: monotonic notification counters per channel (outbox rows of Alertmanager re-sends are
    # deleted, so counting rows could go down), seeded from the outbox as it stands.
    [
        """CREATE TABLE notification_counters (
            channel TEXT NOT NULL,
            name TEXT NOT NULL CHECK (name IN ('failed_attempts', 'failed_messages')),
            value INTEGER NOT NULL,
            PRIMARY KEY (channel, name))""",
        """INSERT INTO notification_counters(channel, name, value)
            SELECT channel, 'failed_attempts', SUM(failures) FROM outbox GROUP BY channel
            HAVING SUM(failures) > 0""",
        """INSERT INTO notification_counters(channel, name, value)
            SELECT channel, 'failed_messages', COUNT(*) FROM outbox WHERE state = 'failed'
            GROUP BY channel""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RecallwatchError):
    """The store cannot be opened, locked or written."""

    reason = "store"


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint as the store knows it."""

    id: int
    run: str
    name: str
    path: str
    step: int | None
    state: CheckpointState
    eval_key: str
    mining_fingerprint: str | None
    mining_error: str | None
    completed_at: float
    discovered_at: float
    updated_at: float
    state_reason: str | None
    state_message: str | None
    attempts: int


@dataclass(frozen=True)
class NewEvaluation:
    """A finished evaluation of one checkpoint on one held-out set, to be recorded."""

    checkpoint_id: int
    dataset: str
    encoder: str
    config_hash: str
    started_at: float
    finished_at: float
    metrics: Mapping[str, Mapping[int, float]]
    timings: Mapping[str, float]
    counts: Mapping[str, int]
    #: query id -> relevant doc id -> 1-based rank in the top max(k), 0 when not retrieved.
    outcomes: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class EvaluationRow:
    """A stored evaluation (done or failed); outcomes are loaded on demand."""

    id: int
    checkpoint_id: int
    dataset: str
    encoder: str
    config_hash: str
    status: Literal["done", "failed"]
    started_at: float
    finished_at: float
    metrics: dict[str, dict[str, float]]
    timings: dict[str, float]
    counts: dict[str, int]
    reason: str | None
    message: str | None


@dataclass(frozen=True)
class FnBucket:
    """The false-negative rate among sampled negatives of one mining-rank bucket (``"1-5"``)."""

    rank_bucket: str
    sample_size: int
    false_negatives: int
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class FnEstimate:
    """A false-negative estimate of the mined set a checkpoint trained on (Wilson 95% bounds)."""

    oracle: str
    sample_size: int
    false_negatives: int
    estimate: float
    lower: float
    upper: float
    random_estimate: float | None = None
    amplification: float | None = None
    buckets: tuple[FnBucket, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """A run with its checkpoint counts by state and its latest evaluated checkpoint."""

    name: str
    directory: str
    states: dict[str, int]
    latest: CheckpointRow | None
    last_successful_evaluation_at: float | None


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert: its latest document and its notification bookkeeping."""

    alert: Alert
    key: str
    rule: str
    status: Literal["firing", "resolved"]
    opened_at: float
    last_notified_at: float
    resolved_at: float | None
    repeats: int


@dataclass(frozen=True)
class AlertWrite:
    """A new state of an alert, written with its outbox messages in one transaction."""

    alert: Alert
    status: Literal["firing", "resolved"]
    opened_at: float
    notified_at: float
    repeats: int


@dataclass(frozen=True)
class NewMessage:
    """A notification to enqueue for one channel (its body rendered once, sent as is)."""

    message_id: str
    alert_id: str
    channel: str
    rule: str
    event: str
    body: bytes
    created_at: float


def pack_outcomes(outcomes: Mapping[str, Mapping[str, int]]) -> bytes:
    """Compress per-query outcomes (query -> relevant doc -> rank) for storage."""
    return zlib.compress(json.dumps(outcomes, separators=(",", ":")).encode(), 6)


def unpack_outcomes(blob: bytes) -> dict[str, dict[str, int]]:
    """Inverse of ``pack_outcomes``."""
    value: dict[str, dict[str, int]] = json.loads(zlib.decompress(blob))
    return value


def _checkpoint(row: sqlite3.Row) -> CheckpointRow:
    return CheckpointRow(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row


def _evaluation(row: sqlite3.Row) -> EvaluationRow:
    return EvaluationRow(
        id=row["id"],
        checkpoint_id=row["checkpoint_id"],
        dataset=row["dataset"],
        encoder=row["encoder"],
        config_hash=row["config_hash"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        metrics=json.loads(row["metrics"] or "{}"),
        timings=json.loads(row["timings"] or "{}"),
        counts=json.loads(row["counts"] or "{}"),
        reason=row["reason"],
        message=row["message"],
    )


_CHECKPOINT_COLUMNS = """c.id, r.name AS run, c.name, c.path, c.step, c.state, c.eval_key,
    c.mining_fingerprint, c.mining_error, c.completed_at, c.discovered_at, c.updated_at,
    c.state_reason, c.state_message, c.attempts"""
_ORDER = "ORDER BY c.step IS NULL, c.step, c.name"


class Store:
    """The recallwatch database; thread-safe (one connection behind a lock)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock_fd: int | None) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd
        self._mutex = threading.RLock()
        # Transitional: the aggregates are being split out of this class (store/ package).
        self.queue: Store = self
        self.results: Store = self
        self.ledger: Store = self
        self.outbox: Store = self
        self.views: Store = self

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, exclusive: bool = True) -> Store:
        """Open (creating and migrating) the store; ``exclusive`` locks out a second daemon."""
        p = Path(path)
        hint = "check that the directory exists (or can be created) and is writable by this user"
        lock_fd = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir():
                raise StoreError(f"cannot open the store {p}: it is a directory")
            if exclusive:
                lock_fd = _lock(p)
            conn = sqlite3.connect(p, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot open the store {p}: SQLite refused WAL mode ({mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(conn, p, lock_fd)
            store._migrate()
        except StoreError:
            _unlock(lock_fd)
            raise
        except (OSError, sqlite3.Error) as exc:
            _unlock(lock_fd)
            raise StoreError(f"cannot open the store {p}: {exc}; {hint}") from exc
        return store

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this recallwatch "
                f"({SCHEMA_VERSION}); upgrade recallwatch"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as conn:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        with self._mutex:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the WAL, close the connection and release the lock."""
        with self._mutex:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            _unlock(self._lock_fd)
            self._lock_fd = None

    def ping(self) -> bool:
        """True when the database answers a query."""
        try:
            with self._mutex:
                self._conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                # Inside the try: a COMMIT that fails (busy, disk full, I/O error, a deferred
                # constraint) must not leave the connection in a transaction, or every later
                # BEGIN fails.
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return self._conn.execute(sql, params).fetchall()

    # -- runs and checkpoints -----------------------------------------------------------------

    def ensure_run(self, name: str, directory: str, now: float) -> int:
        """The id of run ``name``, created on first use (its directory is kept up to date)."""
        with self._tx() as conn:
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
        with self._tx() as conn:
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
        rows = self._query("SELECT name FROM checkpoints WHERE run_id = ?", (run_id,))
        return {r[0] for r in rows}

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
        order = "ORDER BY c.step IS NULL, c.step DESC, c.name DESC" if newest_first else _ORDER
        rows = self._query(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            f"WHERE r.name = ? AND c.state IN ({marks}) {order} LIMIT ? OFFSET ?",
            (run, *states, limit, offset),
        )
        return [_checkpoint(r) for r in rows]

    def count_checkpoints(self, run: str, *, states: Sequence[str] = STATES) -> int:
        """How many checkpoints of a run are in some states."""
        marks = ",".join("?" for _ in states)
        rows = self._query(
            "SELECT COUNT(*) FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            f"WHERE r.name = ? AND c.state IN ({marks})",
            (run, *states),
        )
        return int(rows[0][0])

    def checkpoint(self, run: str, name: str) -> CheckpointRow | None:
        """One checkpoint by run and name."""
        rows = self._query(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            "WHERE r.name = ? AND c.name = ?",
            (run, name),
        )
        return _checkpoint(rows[0]) if rows else None

    def checkpoint_by_id(self, checkpoint_id: int) -> CheckpointRow:
        """One checkpoint by id."""
        rows = self._query(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            "WHERE c.id = ?",
            (checkpoint_id,),
        )
        return _checkpoint(rows[0])

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
        """Move a checkpoint to ``state`` (only from ``expect`` states when given)."""
        sql = (
            "UPDATE checkpoints SET state = ?, state_reason = ?, state_message = ?, "
            "updated_at = ?, attempts = attempts + (? = 'evaluating') WHERE id = ?"
        )
        params: list[Any] = [state, reason, message, now, state, checkpoint_id]
        if expect is not None:
            sql += f" AND state IN ({','.join('?' for _ in expect)})"
            params += list(expect)
        with self._tx() as conn:
            return conn.execute(sql, params).rowcount == 1

    def recover(self, now: float) -> list[CheckpointRow]:
        """Return checkpoints a crash left ``evaluating`` to ``discovered``; list them."""
        with self._mutex:
            rows = self._query(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints c JOIN runs r ON r.id = c.run_id "
                "WHERE c.state = 'evaluating'"
            )
            with self._tx() as conn:
                conn.execute(
                    "UPDATE checkpoints SET state = 'discovered', state_reason = 'interrupted', "
                    "updated_at = ? WHERE state = 'evaluating'",
                    (now,),
                )
        return [_checkpoint(r) for r in rows]

    def rekey(self, run_id: int, eval_key: str, now: float) -> int:
        """Re-queue a run's evaluated or failed checkpoints whose evaluation key changed."""
        with self._tx() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'config_changed', "
                "eval_key = ?, updated_at = ? WHERE run_id = ? AND eval_key != ? "
                "AND state IN ('evaluated', 'failed', 'discovered')",
                (eval_key, now, run_id, eval_key),
            ).rowcount

    def requeue_failed(self, run_id: int, now: float) -> int:
        """Queue a run's failed checkpoints again (after the cause was fixed); their count."""
        with self._tx() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'retry', "
                "state_message = NULL, updated_at = ? WHERE run_id = ? AND state = 'failed'",
                (now, run_id),
            ).rowcount

    # -- evaluations --------------------------------------------------------------------------

    def done_evaluation(
        self, checkpoint_id: int, dataset: str, encoder: str, config_hash: str
    ) -> int | None:
        """The id of the finished evaluation with this idempotency key, if any."""
        rows = self._query(
            "SELECT id FROM evaluations WHERE checkpoint_id = ? AND dataset = ? AND encoder = ? "
            "AND config_hash = ? AND status = 'done'",
            (checkpoint_id, dataset, encoder, config_hash),
        )
        return int(rows[0][0]) if rows else None

    def record_evaluation(self, ev: NewEvaluation, run_id: int) -> int:
        """Store a finished evaluation and its stage timings in one transaction."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO evaluations(checkpoint_id, dataset, encoder, config_hash, status, "
                "started_at, finished_at, metrics, timings, counts, outcomes) "
                "VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?)",
                (
                    ev.checkpoint_id,
                    ev.dataset,
                    ev.encoder,
                    ev.config_hash,
                    ev.started_at,
                    ev.finished_at,
                    json.dumps(
                        {m: {str(k): v for k, v in by_k.items()} for m, by_k in ev.metrics.items()}
                    ),
                    json.dumps(dict(ev.timings)),
                    json.dumps(dict(ev.counts)),
                    pack_outcomes(ev.outcomes),
                ),
            )
            conn.executemany(
                "INSERT INTO stage_timings(run_id, stage, seconds, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                [(run_id, stage, secs, ev.finished_at) for stage, secs in ev.timings.items()],
            )
            return int(cur.lastrowid or 0)

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
        with self._tx() as conn:
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
                "updated_at = ? WHERE id = ?",
                (reason, message, finished_at, checkpoint_id),
            )

    def evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        """Every evaluation of a checkpoint, oldest first."""
        rows = self._query(
            "SELECT * FROM evaluations WHERE checkpoint_id = ? ORDER BY id", (checkpoint_id,)
        )
        return [_evaluation(r) for r in rows]

    def current_evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        """The finished evaluations of a checkpoint under its current evaluation key."""
        rows = self._query(
            "SELECT e.* FROM evaluations e JOIN checkpoints c ON c.id = e.checkpoint_id "
            "WHERE e.checkpoint_id = ? AND e.status = 'done' "
            "AND e.config_hash = json_extract(c.eval_key, '$.\"' || e.dataset || '\"') "
            "ORDER BY e.dataset",
            (checkpoint_id,),
        )
        return [_evaluation(r) for r in rows]

    def outcomes(self, evaluation_id: int) -> dict[str, dict[str, int]]:
        """The per-query outcomes of a finished evaluation."""
        rows = self._query("SELECT outcomes FROM evaluations WHERE id = ?", (evaluation_id,))
        return unpack_outcomes(rows[0][0]) if rows and rows[0][0] is not None else {}

    def record_stage(self, run_id: int, stage: str, seconds: float, now: float) -> None:
        """Record the duration of a stage outside an evaluation (e.g. false_negatives)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO stage_timings(run_id, stage, seconds, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (run_id, stage, seconds, now),
            )

    # -- mining, false negatives, verdicts ----------------------------------------------------

    def mining_content(self, fingerprint: str) -> Any:
        """The mining metadata with this fingerprint (parsed JSON), or ``None``."""
        rows = self._query(
            "SELECT content FROM mining_configs WHERE fingerprint = ?", (fingerprint,)
        )
        return json.loads(rows[0][0]) if rows else None

    def record_fn_estimate(
        self,
        checkpoint_id: int,
        fingerprint: str | None,
        config_hash: str,
        est: FnEstimate,
        now: float,
    ) -> None:
        """Store (or replace) the false-negative estimate attached to a checkpoint."""
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
        }
        with self._tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO fn_estimates({', '.join(row)}) "
                f"VALUES ({', '.join(':' + k for k in row)})",
                row,
            )

    def fn_estimate_for(self, fingerprint: str, config_hash: str) -> FnEstimate | None:
        """A stored estimate of the mined set with this fingerprint, to reuse across checkpoints."""
        rows = self._query(
            "SELECT * FROM fn_estimates WHERE mining_fingerprint = ? AND config_hash = ? "
            "ORDER BY id DESC LIMIT 1",
            (fingerprint, config_hash),
        )
        return _fn(rows[0]) if rows else None

    def fn_estimate(self, checkpoint_id: int) -> FnEstimate | None:
        """The latest estimate attached to a checkpoint."""
        rows = self._query(
            "SELECT * FROM fn_estimates WHERE checkpoint_id = ? ORDER BY id DESC LIMIT 1",
            (checkpoint_id,),
        )
        return _fn(rows[0]) if rows else None

    def exported_fn_estimate(self, checkpoint: CheckpointRow) -> FnEstimate | None:
        """The estimate to export for a checkpoint: its own, else its mined set's, else a fallback.

        Without an estimate of its own, the newest estimate of its run with the same mining
        fingerprint; and if its audit failed, the newest estimate of its run, so that a judge
        outage does not look like the rate going away.
        """
        est = self.fn_estimate(checkpoint.id)
        if est is not None or checkpoint.mining_fingerprint is None:
            return est
        rows = self._query(
            "SELECT f.* FROM fn_estimates f JOIN checkpoints c ON c.id = f.checkpoint_id "
            "JOIN runs r ON r.id = c.run_id WHERE r.name = ? AND f.mining_fingerprint = ? "
            "ORDER BY f.id DESC LIMIT 1",
            (checkpoint.run, checkpoint.mining_fingerprint),
        )
        if rows:
            return _fn(rows[0])
        if self.fn_audit_failure(checkpoint.id) is None:
            return None
        rows = self._query(
            "SELECT f.* FROM fn_estimates f JOIN checkpoints c ON c.id = f.checkpoint_id "
            "JOIN runs r ON r.id = c.run_id WHERE r.name = ? ORDER BY f.id DESC LIMIT 1",
            (checkpoint.run,),
        )
        return _fn(rows[0]) if rows else None

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
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO fn_audit_failures(run_id, checkpoint_id, mining_fingerprint, "
                "config_hash, reason, message, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, checkpoint_id, fingerprint, config_hash, reason, message, now),
            )

    def fn_audit_failure(self, checkpoint_id: int) -> sqlite3.Row | None:
        """The latest failed audit of a checkpoint (reason, message, failed_at), if any."""
        rows = self._query(
            "SELECT reason, message, failed_at FROM fn_audit_failures WHERE checkpoint_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (checkpoint_id,),
        )
        return rows[0] if rows else None

    def fn_audit_failures_by_run(self) -> dict[tuple[str, str], int]:
        """Failed false-negative audits per (run, reason)."""
        rows = self._query(
            "SELECT r.name, f.reason, COUNT(*) FROM fn_audit_failures f "
            "JOIN runs r ON r.id = f.run_id GROUP BY r.name, f.reason"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def requeue_failed_audits(self, run_id: int, config_hash: str, now: float) -> int:
        """Queue again, per mined set still without an estimate, its last failed audit's checkpoint.

        Its held-out evaluations are stored, so the re-run only repeats the audit.
        """
        with self._tx() as conn:
            return conn.execute(
                "UPDATE checkpoints SET state = 'discovered', state_reason = 'fn_retry', "
                "state_message = NULL, updated_at = :now WHERE state = 'evaluated' AND id IN ("
                "SELECT f.checkpoint_id FROM fn_audit_failures f "
                "WHERE f.run_id = :run AND f.config_hash = :hash AND f.id = ("
                "SELECT MAX(g.id) FROM fn_audit_failures g WHERE g.run_id = f.run_id "
                "AND g.mining_fingerprint = f.mining_fingerprint AND g.config_hash = :hash) "
                "AND NOT EXISTS (SELECT 1 FROM fn_estimates e "
                "WHERE e.mining_fingerprint = f.mining_fingerprint AND e.config_hash = :hash))",
                {"now": now, "run": run_id, "hash": config_hash},
            ).rowcount

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
        """Store the regression decision for one checkpoint, metric and k."""
        with self._tx() as conn:
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

    # -- summaries for the API and the exporter ------------------------------------------------

    def runs(self) -> list[RunSummary]:
        """Every run with counts by state and its latest evaluated checkpoint."""
        out = []
        for run in self._query("SELECT id, name, directory FROM runs ORDER BY name"):
            counts: dict[str, int] = dict.fromkeys(STATES, 0)
            for state, n in self._query(
                "SELECT state, COUNT(*) FROM checkpoints WHERE run_id = ? GROUP BY state", (run[0],)
            ):
                counts[state] = n
            last = self._query(
                "SELECT MAX(e.finished_at) FROM evaluations e JOIN checkpoints c "
                "ON c.id = e.checkpoint_id WHERE c.run_id = ? AND e.status = 'done'",
                (run[0],),
            )[0][0]
            out.append(RunSummary(run[1], run[2], counts, self.latest_evaluated(run[1]), last))
        return out

    def latest_evaluated(self, run: str) -> CheckpointRow | None:
        """The evaluated checkpoint of a run with the highest step."""
        rows = self._query(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            "WHERE r.name = ? AND c.state = 'evaluated' "
            "ORDER BY c.step IS NULL, c.step DESC, c.name DESC LIMIT 1",
            (run,),
        )
        return _checkpoint(rows[0]) if rows else None

    def mining_change_at(self, checkpoint: CheckpointRow) -> float | None:
        """When the checkpoint's mining config first appeared in its run (after any other one)."""
        if checkpoint.mining_fingerprint is None or checkpoint.step is None:
            return None
        rows = self._query(
            "SELECT MIN(c.completed_at) FROM checkpoints c JOIN runs r ON r.id = c.run_id "
            "WHERE r.name = :run AND c.mining_fingerprint = :fp AND c.step <= :step AND c.step > "
            "COALESCE((SELECT MAX(o.step) FROM checkpoints o WHERE o.run_id = c.run_id "
            "AND o.step < :step AND o.mining_fingerprint IS NOT :fp), -1)",
            {"run": checkpoint.run, "fp": checkpoint.mining_fingerprint, "step": checkpoint.step},
        )
        value = rows[0][0]
        return None if value is None else float(value)

    def counts_by_run(self) -> dict[str, int]:
        """Finished evaluations per run."""
        rows = self._query(
            "SELECT r.name, COUNT(e.id) FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id "
            "LEFT JOIN evaluations e ON e.checkpoint_id = c.id AND e.status = 'done' "
            "GROUP BY r.name"
        )
        return {r[0]: int(r[1]) for r in rows}

    def failures_by_run(self) -> dict[tuple[str, str], int]:
        """Failed evaluations per (run, reason)."""
        rows = self._query(
            "SELECT r.name, e.reason, COUNT(*) FROM evaluations e JOIN checkpoints c "
            "ON c.id = e.checkpoint_id JOIN runs r ON r.id = c.run_id WHERE e.status = 'failed' "
            "GROUP BY r.name, e.reason"
        )
        return {(r[0], r[1] or "error"): int(r[2]) for r in rows}

    def pending_by_run(self) -> dict[str, int]:
        """Checkpoints discovered but not yet evaluated (queued or evaluating), per run."""
        rows = self._query(
            "SELECT r.name, COUNT(c.id) FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id "
            "AND c.state IN ('discovered', 'evaluating') GROUP BY r.name"
        )
        return {r[0]: int(r[1]) for r in rows}

    def last_success_by_run(self) -> dict[str, float]:
        """Time of the last finished evaluation, per run."""
        rows = self._query(
            "SELECT r.name, MAX(e.finished_at) FROM evaluations e JOIN checkpoints c "
            "ON c.id = e.checkpoint_id JOIN runs r ON r.id = c.run_id WHERE e.status = 'done' "
            "GROUP BY r.name"
        )
        return {r[0]: float(r[1]) for r in rows}

    def stage_histograms(self, buckets: Sequence[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per stage: cumulative counts at each bucket bound, total count and sum of seconds."""
        cols = ", ".join(f"SUM(seconds <= {float(b)!r})" for b in buckets)
        rows = self._query(
            f"SELECT stage, COUNT(*), SUM(seconds), {cols} FROM stage_timings GROUP BY stage"
        )
        return {r[0]: ([int(v or 0) for v in tuple(r)[3:]], int(r[1]), float(r[2])) for r in rows}

    def verdicts(self, checkpoint_id: int) -> list[sqlite3.Row]:
        """The regression verdicts recorded for a checkpoint."""
        return self._query(
            "SELECT * FROM verdicts WHERE checkpoint_id = ? ORDER BY dataset, metric, k, kind",
            (checkpoint_id,),
        )

    # -- alerts and the outbox ----------------------------------------------------------------

    def apply_alerts(self, writes: Sequence[AlertWrite], messages: Sequence[NewMessage]) -> None:
        """Store alert states and enqueue their messages in one transaction (idempotent)."""
        with self._tx() as conn:
            for w in writes:
                doc = json.dumps(w.alert.as_dict(), allow_nan=False)
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
                        doc,
                    ),
                )
            for m in messages:
                if (
                    m.event == "refresh"
                    and conn.execute(
                        "SELECT 1 FROM outbox WHERE alert_id = ? AND channel = ? "
                        "AND event = 'refresh' AND state = 'pending'",
                        (m.alert_id, m.channel),
                    ).fetchone()
                ):
                    continue  # an Alertmanager re-send is already waiting
                conn.execute(
                    "INSERT OR IGNORE INTO outbox(message_id, alert_id, channel, rule, event, "
                    "body, state, created_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (
                        m.message_id,
                        m.alert_id,
                        m.channel,
                        m.rule,
                        m.event,
                        m.body,
                        m.created_at,
                        m.created_at,
                    ),
                )
            # Delivered Alertmanager re-sends are worth nothing once the next one went out.
            conn.execute(
                "DELETE FROM outbox WHERE event = 'refresh' AND state = 'delivered' "
                "AND delivered_at < ?",
                (max((m.created_at for m in messages), default=0.0) - 3600.0,),
            )

    def open_alert(self, key: str) -> AlertRecord | None:
        """The firing alert with this key, if any."""
        rows = self._query("SELECT * FROM alerts WHERE key = ? AND status = 'firing'", (key,))
        return _alert_record(rows[0]) if rows else None

    def count_episodes(self, key: str) -> int:
        """How many alert episodes (firing or resolved) a key has had."""
        return int(self._query("SELECT COUNT(*) FROM alerts WHERE key = ?", (key,))[0][0])

    def open_alerts(self, *, rule: str | None = None, run: str | None = None) -> list[AlertRecord]:
        """Firing alerts, optionally of one rule and run."""
        rows = self._query(
            "SELECT * FROM alerts WHERE status = 'firing' AND (:rule IS NULL OR rule = :rule) "
            "AND (:run IS NULL OR run = :run) ORDER BY opened_at, id",
            {"rule": rule, "run": run},
        )
        return [_alert_record(r) for r in rows]

    def alert(self, alert_id: str) -> AlertRecord | None:
        """One alert by id."""
        rows = self._query("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return _alert_record(rows[0]) if rows else None

    def alerts(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[AlertRecord]:
        """Alerts, newest first."""
        rows = self._query(
            "SELECT * FROM alerts WHERE (:status IS NULL OR status = :status) "
            "ORDER BY opened_at DESC, id LIMIT :limit OFFSET :offset",
            {"status": status, "limit": limit, "offset": offset},
        )
        return [_alert_record(r) for r in rows]

    def count_alerts(self, *, status: str | None = None) -> int:
        """How many alerts there are (in a status)."""
        rows = self._query(
            "SELECT COUNT(*) FROM alerts WHERE (:status IS NULL OR status = :status)",
            {"status": status},
        )
        return int(rows[0][0])

    def deliveries(self, alert_id: str) -> list[OutboxMessage]:
        """Every outbox message of an alert, oldest first (Alertmanager re-sends left out)."""
        rows = self._query(
            "SELECT * FROM outbox WHERE alert_id = ? AND event != 'refresh' ORDER BY id",
            (alert_id,),
        )
        return [_message(r) for r in rows]

    def next_pending(self, channel: str) -> OutboxMessage | None:
        """The oldest pending message of a channel."""
        rows = self._query(
            "SELECT * FROM outbox WHERE channel = ? AND state = 'pending' ORDER BY id LIMIT 1",
            (channel,),
        )
        return _message(rows[0]) if rows else None

    def record_attempt(
        self,
        message: OutboxMessage,
        result: AttemptResult,
        *,
        now: float,
        state: MessageState,
        next_attempt_at: float,
    ) -> None:
        """Store one delivery attempt's result and the message's new state (and count them)."""
        with self._tx() as conn:
            if result.outcome != "ok":
                _count(conn, message.channel, "failed_attempts", 1)
            if state == "failed":
                _count(conn, message.channel, "failed_messages", 1)
            conn.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1, "
                "failures = failures + ?, next_attempt_at = ?, last_attempt_at = ?, "
                "last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (
                    state,
                    int(result.outcome != "ok"),
                    next_attempt_at,
                    now,
                    result.status,
                    result.error,
                    now if state == "delivered" else None,
                    message.id,
                ),
            )

    def fail_pending_except(self, channels: Sequence[str], now: float) -> int:
        """Fail pending messages of channels not in ``channels`` (removed from the config)."""
        marks = ",".join("?" for _ in channels) or "''"
        with self._tx() as conn:
            gone = conn.execute(
                "SELECT channel, COUNT(*) FROM outbox "
                f"WHERE state = 'pending' AND channel NOT IN ({marks}) GROUP BY channel",
                tuple(channels),
            ).fetchall()
            for channel, n in gone:
                _count(conn, channel, "failed_messages", int(n))
            return conn.execute(
                "UPDATE outbox SET state = 'failed', "
                "last_error = 'the channel is no longer configured', last_attempt_at = ? "
                f"WHERE state = 'pending' AND channel NOT IN ({marks})",
                (now, *channels),
            ).rowcount

    def notifications_delivered(self) -> dict[tuple[str, str], int]:
        """Delivered notifications per (channel, rule) (Alertmanager re-sends not counted)."""
        rows = self._query(
            "SELECT channel, rule, COUNT(*) FROM outbox WHERE state = 'delivered' "
            "AND event != 'refresh' GROUP BY channel, rule"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def notification_failures(self) -> dict[str, int]:
        """Failed delivery attempts per channel, retried or terminal (monotonic)."""
        return self._counters("failed_attempts")

    def notifications_failed(self) -> dict[str, int]:
        """Messages that failed for good (terminal, expired, channel removed) per channel."""
        return self._counters("failed_messages")

    def _counters(self, name: str) -> dict[str, int]:
        rows = self._query(
            "SELECT channel, value FROM notification_counters WHERE name = ? ORDER BY channel",
            (name,),
        )
        return {r[0]: int(r[1]) for r in rows}

    def outbox_pending(self) -> dict[str, int]:
        """Messages waiting for delivery, per channel."""
        rows = self._query(
            "SELECT channel, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY channel"
        )
        return {r[0]: int(r[1]) for r in rows}


def _count(conn: sqlite3.Connection, channel: str, name: str, n: int) -> None:
    conn.execute(
        "INSERT INTO notification_counters(channel, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT(channel, name) DO UPDATE SET value = value + excluded.value",
        (channel, name, n),
    )


def _fn(row: sqlite3.Row) -> FnEstimate:
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


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        message_id=row["message_id"],
        alert_id=row["alert_id"],
        channel=row["channel"],
        rule=row["rule"],
        event=row["event"],
        body=bytes(row["body"]),
        created_at=row["created_at"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        delivered_at=row["delivered_at"],
    )


def _lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"the store {path} is in use by another recallwatch process (pid {holder}); "
            "stop it or use another store.path"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the flock
