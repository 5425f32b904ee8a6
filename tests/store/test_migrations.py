"""``store/schema.py``: versioned migrations, and the 4 -> 5 ``audit_only`` column."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from recallwatch.records.outbox import AttemptResult
from recallwatch.records.precision import PrecisionReport
from recallwatch.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AlertWrite,
    FnEstimate,
    NewMessage,
    Store,
    StoreError,
)
from tests.helpers.alerts import regression_alert
from tests.helpers.seed import finished


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


def test_the_counter_migration_starts_from_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "rw.db"
    store = Store.open(path)
    alert = regression_alert()
    write = AlertWrite(alert, "firing", opened_at=0, notified_at=0, repeats=0)
    store.ledger.apply_alerts(
        [write], [NewMessage("h1", alert.id, "hook", "r", "firing", b"{}", 0)]
    )
    message = store.outbox.next_pending("hook")
    assert message is not None
    for state in ("pending", "failed"):
        result = AttemptResult("retry" if state == "pending" else "terminal", 500, "HTTP error 500")
        store.outbox.record_attempt(message, result, now=0, state=state, next_attempt_at=0)  # type: ignore[arg-type]
    store.close()
    with closing(sqlite3.connect(path)) as conn:  # as a store of schema 3 had it
        conn.execute("DROP TABLE notification_counters")
        conn.execute("ALTER TABLE checkpoints DROP COLUMN audit_only")  # added by 4 -> 5
        conn.execute("DROP TABLE review_labels")  # added by 5 -> 6
        conn.execute("ALTER TABLE evaluations DROP COLUMN precision")  # added by 6 -> 7
        conn.execute("ALTER TABLE evaluations DROP COLUMN precision_report")  # by 12 -> 13
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
    store = Store.open(path)
    assert store.outbox.notification_failures() == {"hook": 2}
    assert store.outbox.notifications_failed() == {"hook": 1}
    store.close()


def test_stored_st_evaluations_are_fp32_after_the_precision_migration(tmp_path: Path) -> None:
    """6 -> 7: the st encoder computed in fp32 before precision existed; precomputed has none."""
    path = tmp_path / "rw.db"
    with closing(sqlite3.connect(path)) as conn:
        for migration in MIGRATIONS[:6]:
            for statement in migration:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 6")
        conn.execute("INSERT INTO runs(id, name, directory, created_at) VALUES (1, 'a', '/a', 1)")
        conn.execute(
            "INSERT INTO checkpoints(id, run_id, name, path, state, eval_key, completed_at, "
            "discovered_at, updated_at) VALUES (1, 1, 'c', '/a/c', 'evaluated', '{}', 1, 1, 1)"
        )
        for i, (encoder, status) in enumerate(
            (("st", "done"), ("precomputed", "done"), ("st", "failed")), start=1
        ):
            conn.execute(
                "INSERT INTO evaluations(id, checkpoint_id, dataset, encoder, config_hash, status, "
                "started_at, finished_at) VALUES (?, 1, 'd', ?, ?, ?, 1, 2)",
                (i, encoder, f"k{i}", status),
            )
        conn.commit()
    store = Store.open(path)
    assert [e.precision for e in store.results.evaluations(1)] == ["fp32", None, None]
    store.close()


@contextmanager
def _store_before(marker: str, path: Path) -> Iterator[sqlite3.Connection]:
    """A store at ``path`` migrated up to (not including) the migration whose statements contain
    ``marker`` (found by content, not position: later migrations are appended after it), with
    run 1 and its evaluated checkpoint 1; the caller adds its rows, committed on exit."""
    before = next(i for i, m in enumerate(MIGRATIONS) if any(marker in s for s in m))
    with closing(sqlite3.connect(path)) as conn:
        for migration in MIGRATIONS[:before]:
            for statement in migration:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {before}")
        conn.execute("INSERT INTO runs(id, name, directory, created_at) VALUES (1, 'a', '/a', 1)")
        conn.execute(
            "INSERT INTO checkpoints(id, run_id, name, path, state, eval_key, completed_at, "
            "discovered_at, updated_at) VALUES (1, 1, 'c', '/a/c', 'evaluated', '{}', 1, 1, 1)"
        )
        yield conn
        conn.commit()


def test_stored_fn_estimates_keep_their_rows_and_are_audits_after_the_source_migration(
    tmp_path: Path,
) -> None:
    """The fn_estimates source migration: every stored estimate is kept, as 'audit'; afterwards
    an estimate from review labels is a new row and the audit's stays in the history."""
    path = tmp_path / "rw.db"
    with _store_before("source TEXT NOT NULL DEFAULT 'audit'", path) as conn:
        conn.execute(
            "INSERT INTO fn_estimates(id, checkpoint_id, mining_fingerprint, config_hash, oracle, "
            "sample_size, false_negatives, estimate, lower, upper, buckets, details, created_at) "
            "VALUES (7, 1, 'fp', 'h', 'qrels:a.tsv', 100, 5, 0.05, 0.02, 0.11, '[]', '{}', 3)"
        )
    store = Store.open(path)
    audit = store.results.fn_estimate(1)
    assert audit is not None and (audit.oracle, audit.source, audit.sample_size) == (
        "qrels:a.tsv",
        "audit",
        100,
    )
    people = FnEstimate("review", 4, 3, 0.75, 0.3, 0.95, source="review")
    store.results.record_fn_estimate(1, "fp", "h", people, now=4.0)
    assert store.results.fn_estimate(1) == people
    assert [(at, e.source) for at, e in store.results.fn_estimate_history(1)] == [
        (3.0, "audit"),
        (4.0, "review"),
    ]
    assert store.results.fn_audit_estimate_for("fp", "h") == audit
    store.close()


def test_stored_evaluations_have_no_precision_report_after_its_migration(
    tmp_path: Path,
) -> None:
    """The precision report migration: evaluations stored before it keep their rows and have no
    report (None, not a made-up one); a new evaluation's report comes back as it was stored."""
    path = tmp_path / "rw.db"
    with _store_before("precision_report", path) as conn:
        conn.execute(
            "INSERT INTO evaluations(id, checkpoint_id, dataset, encoder, config_hash, status, "
            "started_at, finished_at, metrics, precision) "
            "VALUES (1, 1, 'd', 'st', 'k1', 'done', 1, 2, '{\"recall\": {\"10\": 0.5}}', 'bf16')"
        )
    store = Store.open(path)
    (old,) = store.results.evaluations(1)
    assert (old.precision, old.precision_report, old.report) == ("bf16", None, None)
    assert old.metrics == {"recall": {10: 0.5}}
    report = PrecisionReport("auto", "bf16", "passed", "bf16", 32, 0.99998, 0.999, None, "n")
    evaluation = replace(
        finished(1, config_hash="k2"), precision="bf16", precision_report=report.as_json()
    )
    store.results.record_evaluation(evaluation, 1)
    new = store.results.evaluations(1)[-1]
    assert new.precision_report == report.as_json() and new.report == report
    store.close()
