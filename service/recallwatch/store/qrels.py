"""Qrels overlay versions of a held-out set: labels accepted into it, version by version.

A held-out set's qrels files are never edited. Accepting labels (a hole audit's judgements,
``recallwatch holes --accept``) adds a version: version ``n`` is the original qrels with the
overlay rows of versions 1..n applied in order (a later version's grade for a pair replaces an
earlier one; grade 0 records a judged non-relevant document). Version 0 is the files as they are.
Stored numbers (an evaluation's metrics, an alert's evidence) never change with a new version:
the history is re-scored under a version from its stored rankings and shown beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from recallwatch.store.db import Database

__all__ = ["OverlayLabel", "QrelsVersion", "QrelsVersions"]


@dataclass(frozen=True)
class OverlayLabel:
    """One judgement accepted into a held-out set's qrels."""

    query_id: str
    doc_id: str
    grade: int
    #: Where it came from, e.g. ``labels:holes.csv`` or ``review:alice``.
    source: str


@dataclass(frozen=True)
class QrelsVersion:
    """One overlay version of a held-out set's qrels."""

    dataset: str
    version: int
    note: str
    created_at: float
    labels: int


class QrelsVersions:
    """The ``qrels_versions`` and ``qrels_overlay`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, dataset: str, labels: Iterable[OverlayLabel], *, note: str, now: float
    ) -> QrelsVersion:
        """Accept ``labels`` as the next version of ``dataset``'s qrels; return it."""
        rows = {(lab.query_id, lab.doc_id): lab for lab in labels}
        if not rows:
            raise ValueError("a qrels version needs at least one label")
        with self._db.transaction() as conn:
            latest = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM qrels_versions WHERE dataset = ?",
                (dataset,),
            ).fetchone()[0]
            version = int(latest) + 1
            cur = conn.execute(
                "INSERT INTO qrels_versions(dataset, version, note, created_at) "
                "VALUES (?, ?, ?, ?)",
                (dataset, version, note, now),
            )
            conn.executemany(
                "INSERT INTO qrels_overlay(version_id, query_id, doc_id, grade, source) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (cur.lastrowid, lab.query_id, lab.doc_id, int(lab.grade), lab.source)
                    for lab in rows.values()
                ],
            )
        return QrelsVersion(dataset, version, note, now, len(rows))

    def versions(self, dataset: str) -> list[QrelsVersion]:
        """Every overlay version of a held-out set, oldest first."""
        rows = self._db.query(
            "SELECT v.dataset, v.version, v.note, v.created_at, COUNT(o.doc_id) AS labels "
            "FROM qrels_versions v LEFT JOIN qrels_overlay o ON o.version_id = v.id "
            "WHERE v.dataset = ? GROUP BY v.id ORDER BY v.version",
            (dataset,),
        )
        return [
            QrelsVersion(r["dataset"], r["version"], r["note"], r["created_at"], r["labels"])
            for r in rows
        ]

    def latest(self, dataset: str) -> int:
        """The newest version of a held-out set (0: only the original files)."""
        rows = self._db.query(
            "SELECT COALESCE(MAX(version), 0) FROM qrels_versions WHERE dataset = ?", (dataset,)
        )
        return int(rows[0][0])

    def overlay(self, dataset: str, version: int) -> list[OverlayLabel]:
        """The labels of versions 1..``version``, a later version's grade replacing an earlier."""
        rows = self._db.query(
            "SELECT o.query_id, o.doc_id, o.grade, o.source FROM qrels_overlay o "
            "JOIN qrels_versions v ON v.id = o.version_id "
            "WHERE v.dataset = ? AND v.version <= ? ORDER BY v.version",
            (dataset, version),
        )
        merged = {
            (r["query_id"], r["doc_id"]): OverlayLabel(
                r["query_id"], r["doc_id"], r["grade"], r["source"]
            )
            for r in rows
        }
        return list(merged.values())

    @staticmethod
    def apply(
        qrels: Mapping[str, Mapping[str, int]], overlay: Iterable[OverlayLabel]
    ) -> dict[str, dict[str, int]]:
        """``qrels`` with the overlay's grades applied (a new mapping; ``qrels`` is untouched)."""
        out = {q: dict(docs) for q, docs in qrels.items()}
        for lab in overlay:
            out.setdefault(lab.query_id, {})[lab.doc_id] = lab.grade
        return out
