"""Store integrity: check, back up and restore the database file; what an earlier store left behind.

Used by ``recallwatch store`` (check, backup, restore) and by ``serve`` at start-up:

- ``check`` reads the file's header (a damaged header, a truncated file) and runs SQLite's
  ``integrity_check`` (``quick_check`` with ``full=False``), read-only; safe while a daemon serves.
- ``backup`` copies the store with SQLite's online backup API in one step (one read snapshot:
  consistent while a daemon writes), into a temp file that is checked, then renamed into place.
- ``restore`` checks the backup, takes the store's lock (a running daemon refuses it), copies the
  backup into a temp file beside the store, sets the old store and its ``-wal`` aside (an old
  write-ahead log must never meet the restored file), removes its ``-shm``, and renames.
- ``earlier_store_signs`` lists what an earlier store leaves beside a missing or empty one: the
  review label mirror, backups, a write-ahead log; ``serve`` needs ``--fresh-store`` to start anew.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

from recallwatch.store.db import StoreError, store_lock
from recallwatch.store.schema import SCHEMA_VERSION

__all__ = [
    "REVIEW_MIRROR",
    "BackupResult",
    "RestoreResult",
    "StoreCheck",
    "StoreDamagedError",
    "StoreError",
    "backup",
    "backup_name",
    "check",
    "earlier_store_signs",
    "find_backups",
    "is_empty",
    "restore",
    "review_mirror",
    "set_aside",
]

#: The folder beside the store where the daemon mirrors review labels (``reviews/KEY.csv``).
REVIEW_MIRROR = "reviews"
#: The tables whose rows ``check`` counts (what a reader compares between a store and its copy).
COUNTED = ("runs", "checkpoints", "evaluations", "fn_estimates", "alerts", "outbox")
_MAGIC = b"SQLite format 3\x00"
_MAX_PROBLEMS = 5
#: SQLite's primary result codes that mean a damaged file: IOERR, CORRUPT, NOTADB.
_DAMAGE = frozenset({sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class StoreDamagedError(StoreError):
    """A store or backup file that fails SQLite's integrity check."""

    reason = "store_damaged"


@dataclass(frozen=True)
class StoreCheck:
    """What ``check`` found: the problems (none when the store is sound) and what it holds."""

    path: Path
    problems: tuple[str, ...]
    size_bytes: int
    schema_version: int | None = None
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when SQLite found nothing wrong."""
        return not self.problems

    def describe(self) -> str:
        """One line: the size, schema version and row counts."""
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        return f"{self.size_bytes:,} bytes, schema version {self.schema_version}" + (
            f", {counts}" if counts else ""
        )


@dataclass(frozen=True)
class BackupResult:
    """A backup written: where, and its check."""

    dest: Path
    check: StoreCheck


@dataclass(frozen=True)
class RestoreResult:
    """A restore done: the store, its check, and where the replaced files were set aside."""

    store: Path
    check: StoreCheck
    set_aside: tuple[Path, ...]


def review_mirror(store: Path | str) -> Path:
    """The folder of the review label mirror of this store."""
    return Path(store).parent / REVIEW_MIRROR


def backup_name(store: Path | str, when: float) -> str:
    """The file name ``backup`` gives a copy of ``store`` written into a folder."""
    p = Path(store)
    return f"{p.stem}-backup-{_stamp(when)}{p.suffix}"


def find_backups(store: Path | str) -> list[Path]:
    """Backups of this store in its folder (``backup`` names, set-aside stores), newest first."""
    p = Path(store)
    if not p.parent.is_dir():
        return []
    found = [
        f
        for pattern in (f"{p.stem}-backup-*{p.suffix}", f"{p.stem}-before-restore-*{p.suffix}")
        for f in p.parent.glob(pattern)
        if f.is_file() and f.stat().st_size > 0
    ]
    return sorted(found, key=lambda f: f.stat().st_mtime, reverse=True)


def is_empty(store: Path | str) -> bool:
    """True when the store file is missing or has 0 bytes."""
    p = Path(store)
    return not p.exists() or (p.is_file() and p.stat().st_size == 0)


def earlier_store_signs(store: Path | str) -> list[str]:
    """What an earlier store left beside this path: review mirror, backups, a write-ahead log."""
    p = Path(store)
    signs: list[str] = []
    mirror = review_mirror(p)
    if mirror.is_dir():
        labels = sorted(mirror.glob("*.csv"))
        if labels:
            signs.append(f"the review label mirror {mirror} ({len(labels)} file(s))")
    signs += [f"a backup {b}" for b in find_backups(p)]
    wal = _sidecar(p, "-wal")
    if wal.exists():
        signs.append(f"a write-ahead log {wal} ({wal.stat().st_size:,} bytes)")
    return signs


def check(path: Path | str, *, full: bool = True) -> StoreCheck:
    """Check a store file read-only: its header, its length, then SQLite's integrity check."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"no store at {p}")
    try:
        size = p.stat().st_size
        problems = _header_problems(p, size)
    except OSError as exc:
        raise StoreError(
            f"cannot read the store {p}: {exc.strerror or exc}; check that this user can read it"
        ) from exc
    if problems and problems[0].startswith("the header"):
        return StoreCheck(p, tuple(problems), size)
    version: int | None = None
    rows: dict[str, int] = {}
    pragma = "integrity_check" if full else "quick_check"
    try:
        with _read_only(p) as conn:
            try:
                found = _pragma_lines(conn, f"PRAGMA {pragma}({_MAX_PROBLEMS})")
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise
                found = [f"SQLite: {exc}"]
            if found == ["ok"]:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                rows = _row_counts(conn)
            else:
                problems += _damaged_tables(conn, pragma)
                problems += found[:_MAX_PROBLEMS]
    except sqlite3.Error as exc:
        if not _is_damage(exc):
            # Not damage: a file this user cannot open, or one locked for too long.
            raise StoreError(
                f"cannot check the store {p}: {exc}; check that it and its directory are "
                "readable and writable by this user"
            ) from exc
        problems.append(f"SQLite: {exc}")
    return StoreCheck(p, tuple(problems), size, version, rows)


def backup(store: Path | str, dest: Path | str, *, now: float | None = None) -> BackupResult:
    """Copy the store to ``dest`` (a file, or a folder to name it in) with the online backup API."""
    src = Path(store)
    if not src.is_file() or src.stat().st_size == 0:
        raise StoreError(f"no store to back up at {src}")
    target = Path(dest)
    if target.is_dir():
        target = target / backup_name(src, time.time() if now is None else now)
    if target.exists() and target.samefile(src):
        raise StoreError(f"the backup {target} would overwrite the store; choose another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _copy(src, tmp)
        result = check(tmp)
        if not result.ok:
            raise StoreDamagedError(
                f"the copy of {src} fails SQLite's integrity check, so the store is damaged: "
                + "; ".join(result.problems)
                + f". {target} was not written; keep your earlier backups and run "
                "`recallwatch store check`"
            )
        tmp.replace(target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(target, replace(result, path=target))


def restore(source: Path | str, store: Path | str, *, now: float | None = None) -> RestoreResult:
    """Replace the store by a checked copy of ``source``; refused while a daemon holds the store."""
    src, dst = Path(source), Path(store)
    if not src.is_file():
        raise StoreError(f"no backup at {src}")
    if dst.exists() and src.samefile(dst):
        raise StoreError(f"{src} is the store itself; name a backup")
    found = check(src)
    if not found.ok:
        raise StoreDamagedError(
            f"the backup {src} is damaged: "
            + "; ".join(found.problems)
            + "; the store was not changed. Restore another backup"
        )
    _require_recallwatch(src, found)
    when = time.time() if now is None else now
    dst.parent.mkdir(parents=True, exist_ok=True)
    advice = "stop the daemon (SIGTERM), then run the restore again"
    with store_lock(dst, advice=advice):
        tmp = dst.with_name(f".{dst.name}.restore-{os.getpid()}.tmp")
        try:
            _copy(src, tmp)
            copied = check(tmp, full=False)
            if not copied.ok:
                raise StoreDamagedError(
                    f"the copy of {src} is damaged: "
                    + "; ".join(copied.problems)
                    + f"; {dst} was not changed (is {dst.parent} on a failing disk?)"
                )
            aside = () if is_empty(dst) else set_aside(dst, "before-restore", when)
            # The old store's -wal and -shm must not meet the restored file: SQLite would replay
            # the old log over it.
            for suffix in ("-wal", "-shm"):
                _sidecar(dst, suffix).unlink(missing_ok=True)
            tmp.replace(dst)
            _fsync_dir(dst.parent)
        finally:
            tmp.unlink(missing_ok=True)
    return RestoreResult(dst, check(dst, full=False), aside)


def set_aside(store: Path | str, label: str, when: float) -> tuple[Path, ...]:
    """Rename the store and its ``-wal`` to ``<stem>-<label>-<time><suffix>``; drop its ``-shm``."""
    p = Path(store)
    target = p.with_name(f"{p.stem}-{label}-{_stamp(when)}{p.suffix}")
    moved: list[Path] = []
    try:
        if p.exists():
            p.replace(target)
            moved.append(target)
        wal = _sidecar(p, "-wal")
        if wal.exists():
            # Renamed as the -wal of the renamed file, so that the pair still opens as one database.
            wal.replace(_sidecar(target, "-wal"))
            moved.append(_sidecar(target, "-wal"))
        _sidecar(p, "-shm").unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot set {p} aside as {target}: {exc.strerror or exc}; check that this user can "
            f"write to {p.parent}"
        ) from exc
    _fsync_dir(p.parent)
    return tuple(moved)


def _header_problems(path: Path, size: int) -> list[str]:
    """A damaged header, or a file shorter than the page count its header records."""
    with path.open("rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        return [
            f"the header is damaged: the file does not start with {_MAGIC[:-1].decode()!r} "
            f"({size:,} bytes), so it is not a readable SQLite database"
        ]
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    counter, pages, valid_for = (struct.unpack(">I", header[i : i + 4])[0] for i in (24, 28, 92))
    # The page count in the header is only meaningful when written by the same change.
    if counter == valid_for and pages and size < pages * page_size:
        return [
            f"the file is truncated: {size:,} bytes where its header records {pages:,} pages "
            f"of {page_size:,} bytes ({pages * page_size:,} bytes)"
        ]
    return []


def _pragma_lines(conn: sqlite3.Connection, sql: str) -> list[str]:
    """The lines a checking pragma answers (SQLite may join several into one row)."""
    lines = [line for row in conn.execute(sql) for line in str(row[0]).splitlines()]
    return [line for line in lines if line != "*** in database main ***"]


def _damaged_tables(conn: sqlite3.Connection, pragma: str) -> list[str]:
    """Which tables (with their indexes) fail the check, one by one."""
    try:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
    except sqlite3.Error as exc:
        return [f"the schema table cannot be read: {exc}"]
    damaged: list[str] = []
    for table in tables:
        try:
            ok = _pragma_lines(conn, f'PRAGMA {pragma}("{table}")') == ["ok"]
        except sqlite3.Error:
            ok = False
        if not ok:
            damaged.append(table)
    return [f"damaged tables: {', '.join(damaged)}"] if damaged else []


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows in each counted table the store has."""
    present = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_schema")}
    return {
        t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
        for t in COUNTED
        if t in present
    }


def _require_recallwatch(path: Path, found: StoreCheck) -> None:
    """Refuse a sound SQLite file that is not a recallwatch store this version can open."""
    if found.schema_version is None or not {"runs", "checkpoints"} <= found.rows.keys():
        raise StoreError(f"{path} is an SQLite database but not a recallwatch store; name a backup")
    if found.schema_version > SCHEMA_VERSION:
        raise StoreError(
            f"the backup {path} has schema version {found.schema_version}, newer than this "
            f"recallwatch ({SCHEMA_VERSION}); restore it with the newer recallwatch"
        )


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (it writes nothing to the file; it may create the ``-shm``)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    with closing(conn):
        conn.execute("PRAGMA busy_timeout = 10000")
        yield conn


def _copy(src: Path, tmp: Path) -> None:
    """Copy a database into a new single file (rollback journal, no ``-wal``), synced to disk."""
    try:
        tmp.unlink(missing_ok=True)
        with _read_only(src) as source, closing(sqlite3.connect(tmp, isolation_level=None)) as dest:
            # One step: the whole copy reads one snapshot, whatever a daemon commits meanwhile.
            source.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode = DELETE")
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
    except sqlite3.Error as exc:
        if _is_damage(exc) and "malformed" in str(exc):
            raise StoreDamagedError(
                f"cannot copy {src}, it is damaged: {exc}; run `recallwatch store check`"
            ) from exc
        raise StoreError(f"cannot copy {src} to {tmp.parent}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot write {tmp}: {exc.strerror or exc}") from exc


def _is_damage(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says the file is damaged (not locked, not unreadable)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGE


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _stamp(when: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
