"""A store that cannot grow (a real SQLITE_FULL): remembered until a probe write succeeds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from recallwatch import failpoints
from recallwatch.store import Store


def test_a_full_store_is_remembered_until_a_probe_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = tmp_path / "max-pages"
    limit.write_text("1000000")
    monkeypatch.setenv(failpoints.ENV, failpoints.STORE_MAX_PAGES)
    monkeypatch.setenv(failpoints.FILE_ENV, str(limit))
    store = Store.open(tmp_path / "rw.db")
    try:
        assert store.write_failure is None
        limit.write_text("1")  # SQLite raises it to the database's size: full from here
        with (
            pytest.raises(sqlite3.OperationalError, match="database or disk is full"),
            store.db.transaction() as conn,
        ):
            conn.execute("CREATE TABLE filler (data BLOB)")
            conn.execute("INSERT INTO filler VALUES (zeroblob(100000))")
        assert store.write_failure == "database or disk is full"
        with pytest.raises(sqlite3.OperationalError):
            store.probe_write()
        assert store.write_failure == "database or disk is full"
        assert store.ping()  # reads go on

        limit.write_text("1000000")
        store.probe_write()
        assert store.write_failure is None
        assert store.queue.ensure_run("demo", str(tmp_path), 1.0) == 1
        tables = {r[0] for r in store.db.query("SELECT name FROM sqlite_master")}
        assert "recallwatch_write_probe" not in tables  # the probe leaves nothing behind
    finally:
        store.close()


def test_a_bad_statement_is_not_a_write_failure(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    try:
        with pytest.raises(sqlite3.IntegrityError), store.db.transaction() as conn:
            conn.execute("INSERT INTO runs(id, name, directory, created_at) VALUES (1, 'a', '', 0)")
            conn.execute("INSERT INTO runs(id, name, directory, created_at) VALUES (1, 'b', '', 0)")
        assert store.write_failure is None
    finally:
        store.close()
