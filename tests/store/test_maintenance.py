"""Store integrity (``store/maintenance.py``) on real SQLite files, damaged as disks damage them."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from recallwatch.store import Store, StoreError
from recallwatch.store.maintenance import (
    StoreDamagedError,
    backup,
    backup_name,
    check,
    earlier_store_signs,
    find_backups,
    restore,
)
from tests.helpers.seed import populate


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store of 600 evaluated checkpoints, shared by the module (damage a copy)."""
    return populate(tmp_path_factory.mktemp("populated") / "recallwatch.db")


def damaged(populated: Path, tmp_path: Path, damage: Callable[[Path, int], None]) -> Path:
    """A copy of the populated store with ``damage(path, size)`` done to it."""
    path = tmp_path / "recallwatch.db"
    path.write_bytes(populated.read_bytes())
    damage(path, path.stat().st_size)
    return path


def truncate(path: Path, size: int) -> None:
    """Cut the file in half (a copy or a disk that stopped half-way)."""
    os.truncate(path, size // 2)


def overwrite_header(path: Path, size: int) -> None:
    """Overwrite the first 100 bytes (the SQLite header)."""
    with path.open("r+b") as fh:
        fh.write(b"\xa5" * 100)


def random_middle(path: Path, size: int) -> None:
    """Overwrite 4 KiB in the middle with (seeded) random bytes."""
    with path.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(random.Random(20).randbytes(4096))


def test_check_reports_a_sound_store_and_what_it_holds(populated: Path) -> None:
    found = check(populated)
    assert found.ok, found.problems
    assert found.rows["checkpoints"] == 600 and found.rows["evaluations"] == 600
    assert "600 checkpoints" in found.describe()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (truncate, "the file is truncated"),
        (overwrite_header, "the header is damaged"),
        (random_middle, "damaged tables:"),
    ],
)
def test_check_says_what_is_damaged(
    populated: Path, tmp_path: Path, damage: Callable[[Path, int], None], expected: str
) -> None:
    path = damaged(populated, tmp_path, damage)
    for full in (True, False):
        found = check(path, full=full)
        assert not found.ok
        assert any(p.startswith(expected) for p in found.problems), found.problems


def test_backup_is_one_checked_file_named_for_its_store(populated: Path, tmp_path: Path) -> None:
    done = backup(populated, tmp_path, now=0.0)
    assert (
        done.dest
        == tmp_path / backup_name(populated, 0.0)
        == tmp_path / ("recallwatch-backup-19700101T000000Z.db")
    )
    assert done.check.rows == check(populated).rows
    assert sorted(p.name for p in tmp_path.iterdir()) == [done.dest.name]  # no -wal, no temp
    with pytest.raises(StoreError, match="would overwrite the store"):
        backup(populated, populated)


def test_backup_of_a_damaged_store_writes_nothing(populated: Path, tmp_path: Path) -> None:
    path = damaged(populated, tmp_path, random_middle)
    out = tmp_path / "out"
    with pytest.raises(StoreDamagedError, match="keep your earlier backups"):
        backup(path, out / "copy.db")
    assert not list(out.iterdir())


def test_restore_replaces_the_store_and_sets_the_old_one_and_its_wal_aside(
    populated: Path, tmp_path: Path
) -> None:
    good = backup(populated, tmp_path / "good.db").dest
    path = damaged(populated, tmp_path, random_middle)
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    wal.write_bytes(b"stale log of the damaged store")
    shm.write_bytes(b"stale")
    done = restore(good, path, now=0.0)
    assert done.check.ok and done.check.rows == check(populated).rows
    kept = tmp_path / "recallwatch-before-restore-19700101T000000Z.db"
    assert done.set_aside == (kept, Path(f"{kept}-wal"))
    assert Path(f"{kept}-wal").read_bytes() == b"stale log of the damaged store"
    assert not wal.exists() and not shm.exists()
    # The restored store opens, migrates nothing, and holds the backup's rows.
    store = Store.open(path)
    try:
        assert store.queue.count_checkpoints("a") == 600
    finally:
        store.close()
    assert find_backups(path)[0] == kept


def test_restore_refuses_a_damaged_backup_and_a_locked_store(
    populated: Path, tmp_path: Path
) -> None:
    bad = damaged(populated, tmp_path, overwrite_header)
    target = tmp_path / "live" / "recallwatch.db"
    with pytest.raises(StoreDamagedError, match="the store was not changed"):
        restore(bad, target)
    assert not target.exists()
    daemon = Store.open(target)  # holds the lock, as a serving daemon does
    try:
        with pytest.raises(StoreError, match=rf"in use .*pid {os.getpid()}.*stop the daemon"):
            restore(populated, target)
        assert daemon.queue.count_checkpoints("a") == 0
    finally:
        daemon.close()


def test_restore_refuses_an_sqlite_file_that_is_not_a_store(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t(x)")
    conn.close()
    with pytest.raises(StoreError, match="not a recallwatch store"):
        restore(other, tmp_path / "recallwatch.db")


def test_signs_of_an_earlier_store(populated: Path, tmp_path: Path) -> None:
    store = tmp_path / "recallwatch.db"
    assert earlier_store_signs(store) == []
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "abc.csv").write_text("query_id,doc_id\n", encoding="utf-8")
    backup(populated, tmp_path, now=0.0)
    Path(f"{store}-wal").write_bytes(b"x" * 10)
    signs = earlier_store_signs(store)
    assert signs == [
        f"the review label mirror {tmp_path / 'reviews'} (1 file(s))",
        f"a backup {tmp_path / 'recallwatch-backup-19700101T000000Z.db'}",
        f"a write-ahead log {store}-wal (10 bytes)",
    ]
