"""The database: one SQLite write connection (WAL) behind a lock, read connections of their own,
transactions and migrations.

Every write is one transaction (``transaction``); a failed ``COMMIT`` is rolled back, so the
connection is never left inside a transaction, and after ``kill -9`` the store holds either the
whole of a write or none of it. The write connection is shared by the daemon's threads behind one
re-entrant lock. Reads (``query``, ``reading``) take a connection of a small pool instead: in WAL
mode a reader sees the last committed state and neither waits for the writer nor holds it up, so a
slow scrape holds up neither the pages nor the daemon's writes. A thread inside a ``transaction``
reads through the write connection (it sees its own uncommitted writes). ``Database.open`` with
``exclusive`` takes a file lock beside the database, so a second daemon on the same store fails
with a clear error instead of corrupting it.

A write that fails because the store cannot be written (disk full, I/O error, read-only, locked)
is remembered in ``write_failure`` until ``probe_write`` succeeds: the daemon reports itself not
ready meanwhile and probes at each poll.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from recallwatch import failpoints
from recallwatch.errors import RecallwatchError
from recallwatch.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["PROBE_BYTES", "Database", "StoreError", "store_lock", "unwritable"]

#: What ``probe_write`` writes (and rolls back): room for a small evaluation's rows.
PROBE_BYTES = 64 * 1024

#: SQLite's primary result codes that mean "the store cannot be written now" (not a bad query):
#: BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_UNWRITABLE = frozenset({5, 6, 8, 10, 11, 13, 14, 15, 26})

#: Idle read connections kept open (more are opened while more threads read at once).
READERS_KEPT = 8
_READ = re.compile(r"\s*(SELECT|WITH|EXPLAIN)\b", re.IGNORECASE)

_HINT = "check that the directory exists (or can be created) and is writable by this user"


class StoreError(RecallwatchError):
    """The store cannot be opened, locked or written."""

    reason = "store"


class Database:
    """One SQLite connection shared by threads: queries, transactions, schema version, lock."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock_fd: int | None) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd
        self._mutex = threading.RLock()
        #: Why the last write failed, while the store cannot be written (``probe_write`` clears).
        self.write_failure: str | None = None
        #: The thread inside a ``transaction`` (its reads go through the write connection).
        self._writer: int | None = None
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path | str, *, exclusive: bool = True) -> Database:
        """Open (creating and migrating) the database; ``exclusive`` locks out a second daemon."""
        p = Path(path)
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
            db = cls(conn, p, lock_fd)
            db._migrate()
        except StoreError:
            _unlock(lock_fd)
            raise
        except (OSError, sqlite3.Error) as exc:
            _unlock(lock_fd)
            raise StoreError(f"cannot open the store {p}: {exc}; {_HINT}") from exc
        return db

    def _migrate(self) -> None:
        """Run each migration the database lacks, each in one transaction."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this recallwatch "
                f"({SCHEMA_VERSION}); upgrade recallwatch"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as conn:
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
        with self._readers_lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers = []
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed at the end or rolled back."""
        with self._mutex:
            self._limit_pages()
            outer, self._writer = self._writer, threading.get_ident()
            try:
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
            except sqlite3.Error as exc:
                if unwritable(exc):
                    self.write_failure = str(exc)
                raise
            finally:
                self._writer = outer

    def probe_write(self) -> None:
        """Write ``PROBE_BYTES`` in a transaction and roll it back; clear ``write_failure``.

        Raises the ``sqlite3.Error`` (and keeps ``write_failure``) while the store cannot grow.
        """
        with self._mutex:
            self._limit_pages()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute("CREATE TABLE recallwatch_write_probe (data BLOB)")
                    self._conn.execute(
                        "INSERT INTO recallwatch_write_probe VALUES (zeroblob(?))", (PROBE_BYTES,)
                    )
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                self.write_failure = str(exc)
                raise
            self.write_failure = None

    def _limit_pages(self) -> None:
        # The ``store-max-pages`` failpoint: a real SQLITE_FULL on this connection (tests only).
        pages = failpoints.store_max_pages()
        if pages is not None:
            self._conn.execute(f"PRAGMA max_page_count = {pages:d}")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        """Every row of one statement: a read on a read connection, anything else (a pragma,
        ``ANALYZE``) on the write connection."""
        if _READ.match(sql) is None or self._writer == threading.get_ident():
            with self._mutex:
                return self._conn.execute(sql, params).fetchall()
        reader = self._take_reader()
        try:
            return reader.execute(sql, params).fetchall()
        finally:
            self._give_back(reader)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read connection of the caller's own, its statements one snapshot (a read
        transaction), returned to the pool at the end; writes go on meanwhile."""
        if self._writer == threading.get_ident():
            with self._mutex:
                yield self._conn
            return
        reader = self._take_reader()
        try:
            reader.execute("BEGIN")
            try:
                yield reader
            finally:
                if reader.in_transaction:
                    reader.execute("ROLLBACK")
        finally:
            self._give_back(reader)

    def _take_reader(self) -> sqlite3.Connection:
        with self._readers_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._readers:
                return self._readers.pop()
        try:
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open a read connection to the store {self.path}: {exc}; {_HINT}"
            ) from exc
        return conn

    def _give_back(self, reader: sqlite3.Connection) -> None:
        with self._readers_lock:
            if not self._closed and len(self._readers) < READERS_KEPT:
                self._readers.append(reader)
                return
        reader.close()


def unwritable(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error means the store cannot be written now (full, I/O, read-only...)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.OperationalError)
    return int(code) & 0xFF in _UNWRITABLE


@contextmanager
def store_lock(
    path: Path | str, *, advice: str = "stop it or use another store.path"
) -> Iterator[None]:
    """Hold the store's lock file (as a serving daemon does); refused while another holds it."""
    fd = _lock(Path(path), advice=advice)
    try:
        yield
    finally:
        _unlock(fd)


def _lock(path: Path, *, advice: str = "stop it or use another store.path") -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"the store {path} is in use by another recallwatch process (pid {holder}); {advice}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the flock
