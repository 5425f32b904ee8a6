"""``store/schema.py``: versioned migrations, and the 4 -> 5 ``audit_only`` column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from recallwatch.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def test_schema_is_migrated_once_and_wal(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "rw.db")
    assert s.schema_version == len(MIGRATIONS)
    s.close()
    conn = sqlite3.connect(tmp_path / "rw.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this recallwatch"):
        Store.open(tmp_path / "rw.db")


def _version_4_store(path: Path) -> None:
    """A store as recallwatch with schema version 4 left it: one checkpoint per state_reason."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:4]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO runs(id, name, directory, created_at) VALUES (1, 'a', '/runs/a', 1)")
    rows = [
        (1, "checkpoint-1", "evaluated", None),
        (2, "checkpoint-2", "discovered", "fn_retry"),  # queued again to retry its audit
        (3, "checkpoint-3", "discovered", "interrupted"),
    ]
    for cid, name, state, reason in rows:
        conn.execute(
            "INSERT INTO checkpoints(id, run_id, name, path, step, state, eval_key, "
            "completed_at, discovered_at, updated_at, state_reason) "
            "VALUES (?, 1, ?, ?, ?, ?, '{}', 1, 1, 1, ?)",
            (cid, name, f"/runs/a/{name}", cid, state, reason),
        )
    conn.commit()
    conn.close()


def test_a_version_4_fn_retry_checkpoint_opens_as_audit_only(tmp_path: Path) -> None:
    _version_4_store(tmp_path / "rw.db")
    store = Store.open(tmp_path / "rw.db")
    assert store.schema_version == SCHEMA_VERSION >= 5
    rows = {c.name: c for c in store.queue.checkpoints("a")}
    assert {n: (c.state, c.audit_only, c.state_reason) for n, c in rows.items()} == {
        "checkpoint-1": ("evaluated", False, None),
        "checkpoint-2": ("discovered", True, None),  # the pseudo-reason became the column
        "checkpoint-3": ("discovered", False, "interrupted"),
    }
    store.close()
    reopened = Store.open(tmp_path / "rw.db")  # migrated once: opening again changes nothing
    assert reopened.queue.checkpoint("a", "checkpoint-2") == rows["checkpoint-2"]
    reopened.close()


def test_every_migration_runs_in_order_from_an_empty_file(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    columns = {r["name"] for r in store.db.query("PRAGMA table_info(checkpoints)")}
    tables = {r[0] for r in store.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    store.close()
    assert "audit_only" in columns
    assert {"runs", "checkpoints", "evaluations", "verdicts", "alerts", "outbox"} <= tables
    assert {"fn_audit_failures", "notification_counters"} <= tables
