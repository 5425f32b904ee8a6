"""Aggregates over the history that readers bring up to date from what changed, not re-read.

The exporter asks at every scrape for each run's evaluated checkpoints, its checkpoints by state,
its evaluation and failure counts and the stage-duration histograms. Re-reading the history for
them made a scrape's cost grow with every checkpoint ever stored; here each aggregate is kept in
memory and advanced from what was written since it last looked:

- ``CheckpointIndex`` follows ``checkpoint_changes``, the log the triggers of migration 8 append
  to in the transaction of every checkpoint insert or state change (trimmed to its newest 100,000
  entries; a reader that fell further behind reloads everything);
- ``HistoryTotals`` follows ``evaluations`` and ``stage_timings`` by rowid: both are append-only
  (rows are inserted, never updated), so what is new is what has a higher id.

Both load everything once (at the first read after start-up, so they are correct across
restarts) and again when the history shrank (rows deleted: the lowest id moved or the highest one
went back), so a compaction that deletes rows is seen at the next read.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from recallwatch.store.db import Database
from recallwatch.store.rows import STATES

__all__ = ["EVALUATED_LOG_LIMIT", "CheckpointIndex", "HistoryTotals"]

#: Checkpoints that became evaluated, kept in memory for readers that follow them (the export
#: cursor); a reader further behind is told it cannot know what changed.
EVALUATED_LOG_LIMIT = 100_000


@dataclass
class _Checkpoint:
    run: str
    state: str
    step: int | None
    name: str


def _order(c: _Checkpoint) -> tuple[bool, int, str]:
    # As ``ReadViews.evaluated_ids``: checkpoints without a step first, the latest last.
    return (c.step is not None, c.step if c.step is not None else 0, c.name)


class CheckpointIndex:
    """Every checkpoint's run, state, step and name, advanced from ``checkpoint_changes``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._rows: dict[int, _Checkpoint] = {}
        self._generation = 0
        #: Per run: its checkpoints by state.
        self._counts: dict[str, dict[str, int]] = {}
        #: Per run: a number that changes whenever one of its checkpoints changes.
        self._versions: dict[str, int] = {}
        #: Per run: its evaluated checkpoints, (order, id) sorted, kept sorted as they change.
        self._evaluated: dict[str, list[tuple[tuple[bool, int, str], int]]] = {}
        #: (run, id) of each checkpoint that became evaluated, in the order seen; its first entry
        #: is at position ``_log_base``; positions before ``_reset_at`` were lost to a reload.
        self._log: list[tuple[str, int]] = []
        self._log_base = 0
        self._reset_at = 0

    def _refresh(self) -> None:
        top, low = self._db.query(
            "SELECT (SELECT MAX(seq) FROM checkpoint_changes), "
            "(SELECT MIN(seq) FROM checkpoint_changes)"
        )[0]
        if self._seq is None or (low is not None and low > self._seq + 1) or (top or 0) < self._seq:
            self._load(int(top or 0))
            return
        if top is None or top == self._seq:
            return
        changed = [
            int(r[0])
            for r in self._db.query(
                "SELECT DISTINCT checkpoint_id FROM checkpoint_changes WHERE seq > ? AND seq <= ?",
                (self._seq, top),
            )
        ]
        for start in range(0, len(changed), 500):
            part = changed[start : start + 500]
            rows = self._db.query(
                "SELECT c.id, r.name, c.state, c.step, c.name FROM checkpoints c "
                f"JOIN runs r ON r.id = c.run_id WHERE c.id IN ({', '.join('?' * len(part))})",
                part,
            )
            found = {int(r[0]) for r in rows}
            for cid in part:
                if cid not in found and cid in self._rows:
                    gone = self._rows.pop(cid)
                    self._touch(gone.run)
                    self._counts[gone.run][gone.state] -= 1
                    if gone.state == "evaluated":
                        items = self._evaluated[gone.run]
                        del items[bisect_left(items, (_order(gone), cid))]
            for r in rows:
                self._put(int(r[0]), _Checkpoint(r[1], r[2], r[3], r[4]))
        self._seq = int(top)

    def _load(self, seq: int) -> None:
        self._rows = {}
        self._counts = {}
        self._evaluated = {}
        for r in self._db.query(
            "SELECT c.id, r.name, c.state, c.step, c.name FROM checkpoints c "
            "JOIN runs r ON r.id = c.run_id"
        ):
            row = _Checkpoint(r[1], r[2], r[3], r[4])
            self._put(int(r[0]), row, logged=False, sort=False)
        for items in self._evaluated.values():
            items.sort()
        self._seq = seq
        self._generation += 1
        # What became evaluated before this load is unknown: every earlier position is behind.
        self._log_base += len(self._log) + 1
        self._log = []
        self._reset_at = self._log_base

    def _put(self, cid: int, row: _Checkpoint, *, logged: bool = True, sort: bool = True) -> None:
        old = self._rows.get(cid)
        if old is not None:
            self._touch(old.run)
            self._counts[old.run][old.state] -= 1
            if old.state == "evaluated":
                items = self._evaluated[old.run]
                del items[bisect_left(items, (_order(old), cid))]
        self._rows[cid] = row
        self._touch(row.run)
        counts = self._counts.setdefault(row.run, dict.fromkeys(STATES, 0))
        counts[row.state] = counts.get(row.state, 0) + 1
        if row.state == "evaluated":
            items = self._evaluated.setdefault(row.run, [])
            if sort:
                insort(items, (_order(row), cid))
            else:
                items.append((_order(row), cid))
            if logged and (old is None or old.state != "evaluated"):
                self._log.append((row.run, cid))
                if len(self._log) > EVALUATED_LOG_LIMIT:
                    cut = len(self._log) // 2
                    del self._log[:cut]
                    self._log_base += cut

    def _touch(self, run: str) -> None:
        self._versions[run] = self._versions.get(run, 0) + 1

    def run_version(self, run: str) -> tuple[int, int]:
        """A value that changes whenever a checkpoint of ``run`` is added or changes state."""
        with self._lock:
            self._refresh()
            return (self._generation, self._versions.get(run, 0))

    def evaluated_ids(self) -> dict[str, list[int]]:
        """Every run's evaluated checkpoints in step order (``ReadViews.evaluated_ids``)."""
        with self._lock:
            self._refresh()
            return {
                r: [c for _, c in items] for r, items in sorted(self._evaluated.items()) if items
            }

    # -- what the export cursor follows (``metrics.cursor.EvaluatedCheckpoints``) -------------

    def evaluated_changes(self, since: int | None) -> tuple[int, list[tuple[str, int]] | None]:
        """Bring the index up to date; the position now and the (run, id) of the checkpoints that
        became evaluated after position ``since`` (None: unknown, ``since`` is None or older than
        a reload or than the log kept). Costs what changed, not the history."""
        with self._lock:
            self._refresh()
            now = self._log_base + len(self._log)
            if since is None or since < self._reset_at or since < self._log_base:
                return now, None
            return now, self._log[since - self._log_base :]

    def evaluated_runs(self) -> list[str]:
        """The runs with an evaluated checkpoint, by name (as of the last ``evaluated_changes``)."""
        with self._lock:
            return sorted(r for r, items in self._evaluated.items() if items)

    def is_evaluated(self, checkpoint_id: int) -> bool:
        """Whether the checkpoint is evaluated (as of the last ``evaluated_changes``)."""
        with self._lock:
            row = self._rows.get(checkpoint_id)
            return row is not None and row.state == "evaluated"

    def order(self, checkpoint_id: int) -> tuple[bool, int, str]:
        """The checkpoint's place in its run's step order (``evaluated_ids``'s order)."""
        with self._lock:
            return _order(self._rows[checkpoint_id])

    def latest_evaluated(self, run: str, exclude: Collection[int] = ()) -> int | None:
        """The run's latest evaluated checkpoint not in ``exclude``; walks back over ``exclude``
        only, not the run's history."""
        with self._lock:
            for _, cid in reversed(self._evaluated.get(run, ())):
                if cid not in exclude:
                    return cid
            return None

    def states(self) -> dict[str, tuple[tuple[int, int], dict[str, int]]]:
        """Per run with checkpoints: (its version, as ``run_version``, its counts by state).

        One read of the change log whatever the number of runs: a poll asks this once instead of
        querying each run for its queued or failed checkpoints.
        """
        with self._lock:
            self._refresh()
            return {
                r: ((self._generation, self._versions.get(r, 0)), dict(c))
                for r, c in self._counts.items()
            }

    def states_by_run(self) -> dict[str, dict[str, int]]:
        """Every run (those without checkpoints too) with its checkpoint counts by state."""
        with self._lock:
            self._refresh()
            runs = [r[0] for r in self._db.query("SELECT name FROM runs")]
            empty: dict[str, int] = dict.fromkeys(STATES, 0)
            return {r: dict(self._counts.get(r, empty)) for r in runs}


class HistoryTotals:
    """Evaluation counts per run and stage histograms, advanced from the rows added since."""

    def __init__(self, db: Database, buckets: Sequence[float] = ()) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._eval_span: tuple[int, int] | None = None
        self._stage_span: tuple[int, int] | None = None
        self._done: dict[str, int] = {}
        self._last_done: dict[str, float] = {}
        self._failed: dict[tuple[str, str], int] = {}
        self._buckets: tuple[float, ...] = tuple(buckets)
        #: stage -> (count at or below each bucket bound, count, sum of seconds).
        self._stages: dict[str, tuple[list[int], int, float]] = {}

    def _advance_evaluations(self) -> None:
        low, high = self._db.query(
            "SELECT (SELECT MIN(id) FROM evaluations), (SELECT MAX(id) FROM evaluations)"
        )[0]
        span = self._eval_span
        if span is None or low != span[0] or (high or 0) < span[1]:
            self._done, self._last_done, self._failed = {}, {}, {}
            after = 0
        else:
            after = span[1]
        if high is None:
            self._eval_span = (0, 0)
            return
        for _, run, status, reason, finished in self._db.query(
            "SELECT e.id, r.name, e.status, e.reason, e.finished_at FROM evaluations e "
            "JOIN checkpoints c ON c.id = e.checkpoint_id JOIN runs r ON r.id = c.run_id "
            "WHERE e.id > ? AND e.id <= ?",
            (after, high),
        ):
            if status == "done":
                self._done[run] = self._done.get(run, 0) + 1
                self._last_done[run] = max(self._last_done.get(run, finished), float(finished))
            else:
                key = (run, reason or "error")
                self._failed[key] = self._failed.get(key, 0) + 1
        self._eval_span = (int(low), int(high))

    def counts_by_run(self) -> dict[str, int]:
        """Finished evaluations per run (runs without any at 0)."""
        with self._lock:
            self._advance_evaluations()
            runs = [r[0] for r in self._db.query("SELECT name FROM runs")]
            return {r: self._done.get(r, 0) for r in runs}

    def failures_by_run(self) -> dict[tuple[str, str], int]:
        """Failed evaluations per (run, reason)."""
        with self._lock:
            self._advance_evaluations()
            return dict(self._failed)

    def last_success_by_run(self) -> dict[str, float]:
        """Time of the last finished evaluation, per run."""
        with self._lock:
            self._advance_evaluations()
            return dict(self._last_done)

    def stage_histograms(self, buckets: Sequence[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per stage: cumulative counts at each bucket bound, total count and sum of seconds."""
        bounds = tuple(float(b) for b in buckets)
        with self._lock:
            low, high = self._db.query(
                "SELECT (SELECT MIN(id) FROM stage_timings), (SELECT MAX(id) FROM stage_timings)"
            )[0]
            span = self._stage_span
            if span is None or bounds != self._buckets or low != span[0] or (high or 0) < span[1]:
                self._stages, self._buckets, after = {}, bounds, 0
            else:
                after = span[1]
            if high is not None:
                for stage, seconds in self._db.query(
                    "SELECT stage, seconds FROM stage_timings WHERE id > ? AND id <= ?",
                    (after, high),
                ):
                    cumulative, count, total = self._stages.get(stage, ([0] * len(bounds), 0, 0.0))
                    for i, b in enumerate(bounds):
                        if seconds <= b:
                            cumulative[i] += 1
                    self._stages[stage] = (cumulative, count + 1, total + float(seconds))
            self._stage_span = (int(low or 0), int(high or 0))
            return {s: (list(c), n, t) for s, (c, n, t) in self._stages.items()}
