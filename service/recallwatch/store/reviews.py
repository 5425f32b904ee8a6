"""Review labels of mined negatives: who said what about which (query, document) pair, and when.

Written by the review pages (``web/review.py``) and ``recallwatch review``; read by the live
estimate, the exports and the agreement (``mining/review.py``). A mined set is named by a key:
its mining fingerprint in the daemon, ``file:<path>`` for the one-shot command. Each reviewer has
at most one label per pair of a set: a new one replaces theirs (``record``), ``remove`` takes it
back (the page's undo) and remembers when (``removals``), so that the review mirror and the store
reconcile by the newest event after lost writes (``web.review_mirror``).
"""

from __future__ import annotations

from dataclasses import dataclass

from recallwatch.store.db import Database

__all__ = ["LABEL_VALUES", "ReviewRemoval", "ReviewRow", "ReviewSetSummary", "Reviews"]

LABEL_VALUES = ("relevant", "not_relevant", "unsure")
_UPSERT = (
    "INSERT INTO review_labels(mined_set, query_id, doc_id, label, reviewer, labelled_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(mined_set, query_id, doc_id, reviewer) "
    "DO UPDATE SET label = excluded.label, labelled_at = excluded.labelled_at"
)


@dataclass(frozen=True)
class ReviewRow:
    """One reviewer's label of one pair of a mined set."""

    mined_set: str
    query_id: str
    doc_id: str
    label: str
    reviewer: str
    labelled_at: float


@dataclass(frozen=True)
class ReviewRemoval:
    """When a reviewer took back their label of one pair of a mined set."""

    mined_set: str
    query_id: str
    doc_id: str
    reviewer: str
    removed_at: float


_REMOVED = (
    "INSERT INTO review_removals(mined_set, query_id, doc_id, reviewer, removed_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(mined_set, query_id, doc_id, reviewer) "
    "DO UPDATE SET removed_at = MAX(removed_at, excluded.removed_at)"
)


@dataclass(frozen=True)
class ReviewSetSummary:
    """How far the review of one mined set is."""

    mined_set: str
    labels: int
    pairs: int
    reviewers: int
    last_labelled_at: float


class Reviews:
    """The ``review_labels`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        mined_set: str,
        query_id: str,
        doc_id: str,
        label: str,
        reviewer: str,
        now: float,
    ) -> None:
        """Store a reviewer's label of a pair, replacing their earlier one."""
        if label not in LABEL_VALUES:
            raise ValueError(f"unknown label {label!r}; use relevant, not_relevant or unsure")
        if not reviewer.strip():
            raise ValueError("a label needs a reviewer name")
        with self._db.transaction() as conn:
            conn.execute(_UPSERT, (mined_set, query_id, doc_id, label, reviewer, now))

    def record_many(self, rows: list[ReviewRow]) -> None:
        """Store many labels in one transaction (an import); a later one wins per reviewer."""
        with self._db.transaction() as conn:
            for r in sorted(rows, key=lambda r: r.labelled_at):
                conn.execute(
                    _UPSERT,
                    (r.mined_set, r.query_id, r.doc_id, r.label, r.reviewer, r.labelled_at),
                )

    def remove(
        self, mined_set: str, query_id: str, doc_id: str, reviewer: str, now: float | None = None
    ) -> bool:
        """Take back a reviewer's label of a pair; False when there was none.

        With ``now``, the removal is remembered (``removals``) in the same transaction.
        """
        with self._db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM review_labels WHERE mined_set = ? AND query_id = ? AND doc_id = ? "
                "AND reviewer = ?",
                (mined_set, query_id, doc_id, reviewer),
            )
            if cur.rowcount > 0 and now is not None:
                conn.execute(_REMOVED, (mined_set, query_id, doc_id, reviewer, now))
            return cur.rowcount > 0

    def remove_many(self, removals: list[ReviewRemoval]) -> int:
        """Take back labels older than their removal, remembering each; how many were removed."""
        removed = 0
        with self._db.transaction() as conn:
            for r in removals:
                cur = conn.execute(
                    "DELETE FROM review_labels WHERE mined_set = ? AND query_id = ? "
                    "AND doc_id = ? AND reviewer = ? AND labelled_at <= ?",
                    (r.mined_set, r.query_id, r.doc_id, r.reviewer, r.removed_at),
                )
                removed += cur.rowcount
                conn.execute(
                    _REMOVED, (r.mined_set, r.query_id, r.doc_id, r.reviewer, r.removed_at)
                )
        return removed

    def removals(self, mined_set: str) -> list[ReviewRemoval]:
        """When each label of a mined set was last taken back, oldest first."""
        rows = self._db.query(
            "SELECT mined_set, query_id, doc_id, reviewer, removed_at FROM review_removals "
            "WHERE mined_set = ? ORDER BY removed_at, query_id, doc_id, reviewer",
            (mined_set,),
        )
        return [ReviewRemoval(*tuple(r)) for r in rows]

    def labels(self, mined_set: str) -> list[ReviewRow]:
        """Every label of a mined set, oldest first."""
        rows = self._db.query(
            "SELECT mined_set, query_id, doc_id, label, reviewer, labelled_at FROM review_labels "
            "WHERE mined_set = ? ORDER BY labelled_at, id",
            (mined_set,),
        )
        return [ReviewRow(*tuple(r)) for r in rows]

    def sets(self) -> list[ReviewSetSummary]:
        """Every mined set with labels, the most recently labelled first."""
        rows = self._db.query(
            "SELECT mined_set, COUNT(*), COUNT(DISTINCT query_id || char(31) || doc_id), "
            "COUNT(DISTINCT reviewer), MAX(labelled_at) FROM review_labels GROUP BY mined_set "
            "ORDER BY MAX(labelled_at) DESC"
        )
        return [ReviewSetSummary(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]
