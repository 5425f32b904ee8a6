"""SQLite persistence (WAL): runs, checkpoints, evaluations, FN estimates, verdicts, alerts.

``Store.open(path)`` opens (creating and migrating) the database and gives one aggregate per
caller, all sharing its connection:

- ``queue`` (``CheckpointQueue``, ``store/queue.py``): runs, checkpoints and their states, the
  mining configs they name; written by the daemon's discovery and evaluation queue.
- ``results`` (``Results``, ``store/results.py``): evaluations, stage timings, false-negative
  estimates and failed audits; written by the daemon, read by alerting and the API.
- ``ledger`` (``AlertLedger``, ``store/ledger.py``): regression verdicts and alerts; written by
  the alerting engine, read by the exporter and the API.
- ``outbox`` (``SqliteOutbox``, ``store/outbox.py``): notification messages, the delivery
  dispatcher's ``Outbox``.
- ``views`` (``ReadViews``, ``store/views.py``): summaries and counters for the exporter and
  the API.
- ``reviews`` (``Reviews``, ``store/reviews.py``): review labels of mined negatives, written by
  the review pages and ``recallwatch review``.
- ``early`` (``EarlyVerdicts``, ``store/early.py``): the early pass' pooled verdicts, kept apart
  from the exact ones (the next pool's candidates come from the stored rankings, ``results``).
- ``variance`` (``VarianceSources``, ``store/variance.py``): comparable evaluations of other
  runs on a held-out set, read by the regression rule for its checkpoint-variance history.

The connection, its lock, transactions and migrations are ``store/db.py`` (``Database``) and
``store/schema.py``; the rows every read returns are ``store/rows.py``.
"""

from __future__ import annotations

from pathlib import Path

from recallwatch.store.db import Database, StoreError
from recallwatch.store.early import EarlyVerdict, EarlyVerdicts, NewEarlyVerdict, PreviousExact
from recallwatch.store.ledger import AlertLedger
from recallwatch.store.outbox import SqliteOutbox
from recallwatch.store.qrels import OverlayLabel, QrelsVersion, QrelsVersions
from recallwatch.store.queue import CheckpointQueue
from recallwatch.store.results import (
    Results,
    pack_outcomes,
    pack_rankings,
    unpack_outcomes,
    unpack_rankings,
)
from recallwatch.store.reviews import ReviewRow, Reviews, ReviewSetSummary
from recallwatch.store.rows import (
    STATES,
    AlertRecord,
    AlertWrite,
    CheckpointRow,
    CheckpointState,
    EvaluationRow,
    FnAuditFailure,
    FnBucket,
    FnEstimate,
    NewEvaluation,
    NewMessage,
    RunSummary,
    VerdictRow,
)
from recallwatch.store.schema import MIGRATIONS, SCHEMA_VERSION
from recallwatch.store.variance import PastEvaluation, VarianceSources
from recallwatch.store.views import ReadViews

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATES",
    "AlertLedger",
    "AlertRecord",
    "AlertWrite",
    "CheckpointQueue",
    "CheckpointRow",
    "CheckpointState",
    "Database",
    "EarlyVerdict",
    "EarlyVerdicts",
    "EvaluationRow",
    "FnAuditFailure",
    "FnBucket",
    "FnEstimate",
    "NewEarlyVerdict",
    "NewEvaluation",
    "NewMessage",
    "OverlayLabel",
    "PastEvaluation",
    "PreviousExact",
    "QrelsVersion",
    "QrelsVersions",
    "ReadViews",
    "Results",
    "ReviewRow",
    "ReviewSetSummary",
    "Reviews",
    "RunSummary",
    "SqliteOutbox",
    "Store",
    "StoreError",
    "VarianceSources",
    "VerdictRow",
    "pack_outcomes",
    "pack_rankings",
    "unpack_outcomes",
    "unpack_rankings",
]


class Store:
    """The recallwatch database and its aggregates; thread-safe (one connection, one lock)."""

    def __init__(self, db: Database) -> None:
        #: The shared connection (aggregates and tests; callers use the aggregates).
        self.db = db
        self.queue = CheckpointQueue(db)
        self.results = Results(db)
        self.ledger = AlertLedger(db)
        self.outbox = SqliteOutbox(db)
        self.views = ReadViews(db, self.queue, self.results)
        self.reviews = Reviews(db)
        self.variance = VarianceSources(db)
        self.qrels = QrelsVersions(db)
        self.early = EarlyVerdicts(db)

    @classmethod
    def open(cls, path: Path | str, *, exclusive: bool = True) -> Store:
        """Open (creating and migrating) the store; ``exclusive`` locks out a second daemon.

        Opening does not recover checkpoints a crash left ``evaluating``: the daemon does, at
        start-up (``queue.recover``).
        """
        return cls(Database.open(path, exclusive=exclusive))

    @property
    def path(self) -> Path:
        """The database file."""
        return self.db.path

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self.db.schema_version

    def ping(self) -> bool:
        """True when the database answers a query."""
        return self.db.ping()

    @property
    def write_failure(self) -> str | None:
        """Why the last write failed, while the store cannot be written (``probe_write`` clears)."""
        return self.db.write_failure

    def probe_write(self) -> None:
        """Check that the store can grow again (raises ``sqlite3.Error`` while it cannot)."""
        self.db.probe_write()

    def close(self) -> None:
        """Checkpoint the WAL, close the connection and release the lock."""
        self.db.close()
