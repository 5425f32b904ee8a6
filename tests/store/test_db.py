"""``store/db.py``: opening, the file lock, transactions; and the ``Store`` facade over it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from recallwatch.store import (
    AlertLedger,
    CheckpointQueue,
    Database,
    ReadViews,
    Results,
    SqliteOutbox,
    Store,
    StoreError,
)


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "rw.db")
    with pytest.raises(StoreError, match=r"in use by another recallwatch process \(pid \d+\)"):
        Store.open(tmp_path / "rw.db")
    reader = Store.open(tmp_path / "rw.db", exclusive=False)
    assert reader.ping()
    reader.close()
    first.close()
    Store.open(tmp_path / "rw.db").close()


def test_unopenable_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="writable"):
        Store.open(tmp_path / "file" / "rw.db")
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)


def test_a_failing_commit_is_rolled_back_and_the_store_stays_usable(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    # A real failing COMMIT: with foreign keys checked at commit time, a row naming a run that
    # does not exist is accepted by the INSERT and refused by the COMMIT.
    store.db._conn.execute("PRAGMA defer_foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.results.record_stage(run + 99, "encode", 1.0, 2.0)
    assert not store.db._conn.in_transaction
    # Later writes work (before the fix: "cannot start a transaction within a transaction").
    store.results.record_stage(run, "encode", 3.0, 4.0)
    assert store.queue.ensure_run("b", "/runs/b", 5.0) != run
    assert store.views.stage_histograms([10.0]) == {"encode": ([1], 1, 3.0)}


def test_an_exception_inside_a_transaction_rolls_it_back(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "rw.db")
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
        conn.execute("INSERT INTO runs(name, directory, created_at) VALUES ('a', '/a', 1)")
        raise RuntimeError("boom")
    assert db.query("SELECT COUNT(*) FROM runs")[0][0] == 0
    with db.transaction() as conn:
        conn.execute("INSERT INTO runs(name, directory, created_at) VALUES ('a', '/a', 1)")
    assert [tuple(r) for r in db.query("SELECT name, directory FROM runs")] == [("a", "/a")]
    db.close()


def test_the_facade_shares_one_database_between_its_aggregates(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    assert store.path == tmp_path / "rw.db"
    assert isinstance(store.queue, CheckpointQueue)
    assert isinstance(store.results, Results)
    assert isinstance(store.ledger, AlertLedger)
    assert isinstance(store.outbox, SqliteOutbox)
    assert isinstance(store.views, ReadViews)
    run = store.queue.ensure_run("a", "/runs/a", 1.0)  # written through one aggregate ...
    assert store.views.counts_by_run() == {"a": 0}  # ... read through another
    assert store.queue.ensure_run("a", "/runs/a", 2.0) == run
    store.close()
    assert not store.ping()  # closed: the database no longer answers
    Store.open(tmp_path / "rw.db").close()  # and the lock was released
