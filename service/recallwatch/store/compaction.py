"""Retention for long histories: drop old per-query detail, keep what every page and alert needs.

What a checkpoint keeps forever: its row (name, step, state, mining fingerprint), every
evaluation's means, counts, stage timings and failure reason, its regression verdicts, its
false-negative estimates, its alerts and their outbox messages. What can be compacted: an
evaluation's per-query outcomes (``evaluations.outcomes``, zlib-compressed JSON of query -> rank
of each relevant document): most of the store's size (~2.5 KB of ~2.8 KB per evaluation of ~300
queries), read only to recompute per-query statistics (the regression test's level plan and
baseline, the checkpoint page's intervals and lost/gained queries).

``plan`` chooses the outcomes to drop: those of finished evaluations older than ``keep_days``
*and* outside each run's newest ``keep_checkpoints`` evaluated checkpoints, except those of a
checkpoint that

- an alert names (its checkpoint or its baseline): its evidence page recomputes from them;
- a regression verdict compared with (``verdicts.baseline_checkpoint_id``);
- is in its run's current or previous mining segment (the next regression decision's level plan
  and baseline are there).

``compact`` sets them to NULL in one transaction and rebuilds the file (``VACUUM``, which needs
the store to itself: it takes the store's lock, so a serving daemon refuses it), then truncates
the write-ahead log. A compacted checkpoint's page shows its means without per-query intervals or
lost/gained queries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from recallwatch.store.db import StoreError, store_lock
from recallwatch.store.schema import SCHEMA_VERSION

__all__ = [
    "CompactionPlan",
    "CompactionResult",
    "StoreError",
    "compact",
    "plan",
    "store_bytes",
]

DAY = 86400.0


@dataclass(frozen=True)
class CompactionPlan:
    """What a compaction would drop, and what the store holds."""

    evaluations: int
    #: Finished evaluations whose per-query outcomes are still stored.
    with_outcomes: int
    #: Evaluations whose outcomes would be dropped, and the bytes those outcomes take.
    drop_ids: tuple[int, ...]
    drop_bytes: int
    #: Evaluations old enough to drop that are kept because something references them.
    protected: int
    store_bytes: int

    def describe(self) -> str:
        """One paragraph for the command's output."""
        per = self.store_bytes / self.evaluations if self.evaluations else 0.0
        return (
            f"{self.evaluations} evaluations ({self.with_outcomes} with per-query outcomes), "
            f"{self.store_bytes:,} bytes ({per:,.0f} per evaluation); "
            f"per-query outcomes to drop: {len(self.drop_ids)} evaluations, "
            f"{self.drop_bytes:,} bytes compressed; kept because an alert, a verdict's baseline "
            f"or a recent mining segment needs them: {self.protected}"
        )


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction did."""

    dropped: int
    bytes_before: int
    bytes_after: int


def store_bytes(path: Path) -> int:
    """The bytes of the store on disk: the file, its write-ahead log and shared memory file."""
    return sum(
        p.stat().st_size
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if p.exists()
    )


def _protected(conn: sqlite3.Connection) -> set[int]:
    """Checkpoints whose outcomes stay: named by alerts or verdicts, or in recent segments."""
    keep: set[int] = {
        int(r[0])
        for r in conn.execute(
            "SELECT DISTINCT baseline_checkpoint_id FROM verdicts "
            "WHERE baseline_checkpoint_id IS NOT NULL"
        )
    }
    by_name = {
        (str(r[0]), str(r[1])): int(r[2])
        for r in conn.execute(
            "SELECT r.name, c.name, c.id FROM checkpoints c JOIN runs r ON r.id = c.run_id"
        )
    }
    for run, document in conn.execute("SELECT run, document FROM alerts"):
        try:
            doc = json.loads(document)
        except ValueError:
            continue
        for name in _named(doc):
            if isinstance(name, str) and (run, name) in by_name:
                keep.add(by_name[(run, name)])
    # The current and previous mining segment of each run (by step): the next decision's plan.
    segments: dict[int, list[list[int]]] = {}
    last: dict[int, str | None] = {}
    for run_id, cid, fp in conn.execute(
        "SELECT run_id, id, mining_fingerprint FROM checkpoints WHERE step IS NOT NULL "
        "ORDER BY run_id, step, name"
    ):
        runs = segments.setdefault(run_id, [])
        if not runs or (fp is not None and last.get(run_id) not in (None, fp)):
            runs.append([])
        if fp is not None:
            last[run_id] = fp
        runs[-1].append(int(cid))
    for runs in segments.values():
        for segment in runs[-2:]:
            keep.update(segment)
    return keep


def _named(doc: object) -> list[object]:
    """The checkpoint names an alert document holds: its checkpoint, its key's and evidence's
    baseline, the checkpoint that resolved it."""
    if not isinstance(doc, dict):
        return []

    def part(name: str) -> dict[str, object]:
        value = doc.get(name)
        return value if isinstance(value, dict) else {}

    evidence_base = part("evidence").get("baseline")
    return [
        doc.get("checkpoint"),
        part("key").get("baseline"),
        evidence_base.get("checkpoint") if isinstance(evidence_base, dict) else None,
        part("resolution").get("checkpoint"),
    ]


def _recent(conn: sqlite3.Connection, keep_checkpoints: int) -> set[int]:
    """Each run's newest ``keep_checkpoints`` evaluated checkpoints (by step)."""
    rows = conn.execute(
        "SELECT id FROM (SELECT c.id, ROW_NUMBER() OVER (PARTITION BY c.run_id "
        "ORDER BY c.step IS NULL, c.step DESC, c.name DESC) AS n "
        "FROM checkpoints c WHERE c.state = 'evaluated') WHERE n <= ?",
        (keep_checkpoints,),
    )
    return {int(r[0]) for r in rows}


def _plan(
    conn: sqlite3.Connection, path: Path, *, keep_days: float, keep_checkpoints: int, now: float
) -> CompactionPlan:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this recallwatch "
            f"({SCHEMA_VERSION}): compact it with the recallwatch that wrote it"
        )
    evaluations, with_outcomes = conn.execute(
        "SELECT COUNT(*), COUNT(outcomes) FROM evaluations"
    ).fetchone()
    keep = _protected(conn) | _recent(conn, keep_checkpoints)
    old = conn.execute(
        "SELECT id, checkpoint_id, length(outcomes) FROM evaluations "
        "WHERE outcomes IS NOT NULL AND finished_at < ?",
        (now - keep_days * DAY,),
    ).fetchall()
    drop = [(int(e), int(n)) for e, c, n in old if c not in keep]
    return CompactionPlan(
        evaluations=int(evaluations),
        with_outcomes=int(with_outcomes),
        drop_ids=tuple(e for e, _ in drop),
        drop_bytes=sum(n for _, n in drop),
        protected=len(old) - len(drop),
        store_bytes=store_bytes(path),
    )


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreError(f"no store at {path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def plan(path: Path, *, keep_days: float, keep_checkpoints: int, now: float) -> CompactionPlan:
    """What ``compact`` would drop (reads only; safe while a daemon serves)."""
    with closing(_connect(path)) as conn:
        return _plan(conn, path, keep_days=keep_days, keep_checkpoints=keep_checkpoints, now=now)


def _chunks(ids: Iterable[int], size: int = 500) -> Iterable[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def compact(
    path: Path,
    *,
    keep_days: float,
    keep_checkpoints: int,
    now: float,
    vacuum: bool = True,
) -> tuple[CompactionPlan, CompactionResult]:
    """Drop the planned outcomes and rebuild the file; refused while a daemon holds the store."""
    with store_lock(path, advice="stop the daemon first: compaction rebuilds the file"):
        with closing(_connect(path)) as conn:
            before = store_bytes(path)
            found = _plan(
                conn, path, keep_days=keep_days, keep_checkpoints=keep_checkpoints, now=now
            )
            conn.execute("BEGIN IMMEDIATE")
            try:
                for batch in _chunks(found.drop_ids):
                    conn.execute(
                        "UPDATE evaluations SET outcomes = NULL "
                        f"WHERE id IN ({', '.join('?' * len(batch))})",
                        batch,
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if vacuum:
                conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return found, CompactionResult(len(found.drop_ids), before, store_bytes(path))
