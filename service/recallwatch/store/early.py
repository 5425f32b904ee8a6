"""Early verdicts: a checkpoint's pooled recall (an upper bound) against the previous checkpoint's
exact recall, kept apart from the exact verdicts, and what confirmed or cleared each.

Written by the daemon's early pass (``daemon.early``) before a checkpoint's exact evaluation and
completed by it after; read by the API, the pages and the exporter. (The next checkpoint's pool
starts from the rankings stored with each exact evaluation, ``store.results``.)
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields

from recallwatch.store.db import Database

__all__ = ["EarlyVerdict", "EarlyVerdicts", "NewEarlyVerdict", "PreviousExact"]


@dataclass(frozen=True)
class NewEarlyVerdict:
    """What the early pass found, to be recorded."""

    checkpoint_id: int
    dataset: str
    config_hash: str
    baseline_evaluation_id: int
    metric: str
    k: int
    #: Mean pooled metric@k: per query an upper bound on the exact value.
    upper_bound: float
    #: The previous checkpoint's exact mean metric@k.
    baseline: float
    p_value: float
    alpha: float
    min_drop: float
    warned: bool
    pool_docs: int
    corpus_docs: int
    seconds: float
    created_at: float


@dataclass(frozen=True)
class EarlyVerdict(NewEarlyVerdict):
    """A stored early verdict; ``exact*`` are None until the exact evaluation completes it."""

    id: int = 0
    exact: float | None = None
    exact_p_value: float | None = None
    exact_regressed: bool | None = None
    resolved_at: float | None = None
    run: str = ""
    checkpoint: str = ""
    step: int | None = None
    #: The name of the checkpoint whose exact evaluation it compares with.
    baseline_checkpoint: str = ""

    @property
    def state(self) -> str:
        """``warning`` (early warning, exact pending), ``quiet`` (no warning, exact pending),
        ``confirmed`` (the exact pass regressed too), ``cleared`` (a warning the exact pass did not
        confirm), ``passed`` (no warning, exact not regressed) or ``missed`` (a drop only the
        exact pass saw: outside what the pool can show)."""
        if self.exact_regressed is None:
            return "warning" if self.warned else "quiet"
        if self.warned:
            return "confirmed" if self.exact_regressed else "cleared"
        return "missed" if self.exact_regressed else "passed"

    @property
    def text(self) -> str:
        """One line, as alerts and pages say it."""
        m = f"{self.metric}@{self.k}"
        head = (
            f"early: {m} <= {self.upper_bound:.2f} against {self.baseline:.2f} exact before"
            if self.warned
            else f"early: {m} <= {self.upper_bound:.2f}, no significant drop below "
            f"{self.baseline:.2f} exact before"
        )
        if self.exact is None:
            return head + ("; confirming…" if self.warned else "; exact pass running")
        return f"{head}; exact {m} {self.exact:.2f}: {self.state}"


@dataclass(frozen=True)
class PreviousExact:
    """The exact evaluation an early pass compares with: the previous checkpoint's."""

    evaluation_id: int
    checkpoint_id: int
    checkpoint: str
    corpus_docs: int


_NEW = tuple(f.name for f in fields(NewEarlyVerdict))


def _row(r: sqlite3.Row) -> EarlyVerdict:
    doc = {name: r[name] for name in _NEW}
    doc["warned"] = bool(doc["warned"])
    regressed = r["exact_regressed"]
    return EarlyVerdict(
        **doc,
        id=r["id"],
        exact=r["exact"],
        exact_p_value=r["exact_p_value"],
        exact_regressed=None if regressed is None else bool(regressed),
        resolved_at=r["resolved_at"],
        run=r["run"],
        checkpoint=r["checkpoint"],
        step=r["step"],
        baseline_checkpoint=r["baseline_checkpoint"],
    )


#: The baseline's checkpoint name: through its evaluation (compaction keeps evaluation rows).
_BASELINE = (
    "LEFT JOIN evaluations be ON be.id = v.baseline_evaluation_id "
    "LEFT JOIN checkpoints bc ON bc.id = be.checkpoint_id "
)
_COLUMNS = (
    "SELECT v.*, r.name AS run, c.name AS checkpoint, c.step AS step, "
    "COALESCE(bc.name, '') AS baseline_checkpoint "
)
_SELECT = (
    _COLUMNS + "FROM early_verdicts v "
    "JOIN checkpoints c ON c.id = v.checkpoint_id JOIN runs r ON r.id = c.run_id " + _BASELINE
)


class EarlyVerdicts:
    """Early verdicts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def previous_exact(
        self, checkpoint_id: int, dataset: str, config_hash: str
    ) -> PreviousExact | None:
        """The finished evaluation, under the same key, of the checkpoint of the same run just
        before this one (by step, then name)."""
        rows = self._db.query(
            "SELECT e.id, e.checkpoint_id, p.name, e.counts FROM checkpoints c "
            "JOIN checkpoints p ON p.run_id = c.run_id AND p.id != c.id "
            "AND (COALESCE(p.step, -1), p.name) < (COALESCE(c.step, -1), c.name) "
            "JOIN evaluations e ON e.checkpoint_id = p.id AND e.status = 'done' "
            "AND e.dataset = ? AND e.config_hash = ? "
            "WHERE c.id = ? ORDER BY COALESCE(p.step, -1) DESC, p.name DESC, e.id DESC LIMIT 1",
            (dataset, config_hash, checkpoint_id),
        )
        if not rows:
            return None
        r = rows[0]
        counts = json.loads(r[3] or "{}")
        return PreviousExact(int(r[0]), int(r[1]), str(r[2]), int(counts.get("documents", 0)))

    def record(self, v: NewEarlyVerdict) -> int:
        """Store an early verdict (one per checkpoint, held-out set and key; a repeat replaces)."""
        values = [getattr(v, n) for n in _NEW]
        with self._db.transaction() as conn:
            cur = conn.execute(
                f"INSERT OR REPLACE INTO early_verdicts({', '.join(_NEW)}) "
                f"VALUES ({', '.join('?' for _ in _NEW)})",
                [int(x) if isinstance(x, bool) else x for x in values],
            )
            verdict_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT OR REPLACE INTO early_latest(run_id, dataset, verdict_id) "
                "SELECT run_id, ?, ? FROM checkpoints WHERE id = ?",
                (v.dataset, verdict_id, v.checkpoint_id),
            )
            return verdict_id

    def resolve(
        self, verdict_id: int, *, exact: float, p_value: float, regressed: bool, at: float
    ) -> None:
        """Complete an early verdict with the exact pass' value and decision."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE early_verdicts SET exact = ?, exact_p_value = ?, exact_regressed = ?, "
                "resolved_at = ? WHERE id = ?",
                (exact, p_value, int(regressed), at, verdict_id),
            )

    def get(self, checkpoint_id: int, dataset: str, config_hash: str) -> EarlyVerdict | None:
        """The early verdict of a checkpoint on a held-out set under a key, if any."""
        rows = self._db.query(
            _SELECT + "WHERE v.checkpoint_id = ? AND v.dataset = ? AND v.config_hash = ?",
            (checkpoint_id, dataset, config_hash),
        )
        return _row(rows[0]) if rows else None

    def for_checkpoint(self, checkpoint_id: int) -> list[EarlyVerdict]:
        """A checkpoint's early verdicts, by held-out set."""
        rows = self._db.query(
            _SELECT + "WHERE v.checkpoint_id = ? ORDER BY v.dataset, v.id", (checkpoint_id,)
        )
        return [_row(r) for r in rows]

    def recent(self, limit: int = 100, run: str | None = None) -> list[EarlyVerdict]:
        """The latest early verdicts, newest first."""
        where, params = ("WHERE r.name = ? ", [run]) if run is not None else ("", [])
        rows = self._db.query(
            _SELECT + where + "ORDER BY v.created_at DESC, v.id DESC LIMIT ?", [*params, limit]
        )
        return [_row(r) for r in rows]

    def latest_per_run(self) -> list[EarlyVerdict]:
        """Each run's and held-out set's latest early verdict (what the exporter shows)."""
        rows = self._db.query(
            _COLUMNS + "FROM early_latest l JOIN early_verdicts v ON v.id = l.verdict_id "
            "JOIN checkpoints c ON c.id = v.checkpoint_id JOIN runs r ON r.id = l.run_id "
            + _BASELINE
            + "ORDER BY r.name, v.dataset"
        )
        return [_row(r) for r in rows]
