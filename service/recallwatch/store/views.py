"""Read views: summaries and aggregates for the Prometheus exporter and the HTTP API.

Nothing here writes. Each view is one or a few queries over the tables the other aggregates own,
and the rule of which false-negative estimate a checkpoint exports (``exported_fn_estimate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from recallwatch.store.db import Database
from recallwatch.store.queue import CheckpointQueue
from recallwatch.store.results import Results, fn_estimate_row
from recallwatch.store.rows import CheckpointRow, FnEstimate, RunSummary
from recallwatch.store.totals import CheckpointIndex, HistoryTotals

__all__ = ["ReadViews"]


class ReadViews:
    """Per-run summaries and counters, read at scrape or request time."""

    def __init__(self, db: Database, queue: CheckpointQueue, results: Results) -> None:
        self._db = db
        self._queue = queue
        self._results = results
        # Aggregates advanced from what was written since the last read (store/totals.py).
        self._checkpoints = CheckpointIndex(db)
        self._totals = HistoryTotals(db)
        #: checkpoint id -> (its run's version, its mining segment start), while nothing changed.
        self._segments: dict[int, tuple[tuple[int, int], tuple[float, int] | None]] = {}

    def runs(self) -> list[RunSummary]:
        """Every run with counts by state and its latest evaluated checkpoint."""
        states = self._checkpoints.states_by_run()
        last = self._totals.last_success_by_run()
        out = []
        for name, directory in self._db.query("SELECT name, directory FROM runs ORDER BY name"):
            cid = self._checkpoints.latest_evaluated(name)
            latest = self._queue.checkpoint_by_id(cid) if cid is not None else None
            out.append(RunSummary(name, directory, states[name], latest, last.get(name)))
        return out

    def run_names(self) -> set[str]:
        """The names of the runs (one indexed read, whatever the history)."""
        return {r[0] for r in self._db.query("SELECT name FROM runs")}

    def has_run(self, name: str) -> bool:
        """Whether a run of this name exists (a lookup by key)."""
        return bool(self._db.query("SELECT 1 FROM runs WHERE name = ?", (name,)))

    def latest_evaluated(self, run: str) -> CheckpointRow | None:
        """The evaluated checkpoint of a run with the highest step."""
        rows = self._queue.checkpoints(run, states=["evaluated"], newest_first=True, limit=1)
        return rows[0] if rows else None

    @property
    def evaluated_index(self) -> CheckpointIndex:
        """Each run's evaluated checkpoints, kept in memory and advanced from the change log: what
        the export cursor follows (``metrics.cursor.EvaluatedCheckpoints``)."""
        return self._checkpoints

    def evaluated_ids(self) -> dict[str, list[int]]:
        """Every run's evaluated checkpoints (ids) in step order: the latest (as
        ``latest_evaluated`` has it) last, checkpoints without a step first."""
        return self._checkpoints.evaluated_ids()

    def mining_change_at(self, checkpoint: CheckpointRow) -> float | None:
        """When the mining config of ``checkpoint`` replaced another one in its run, or None.

        A run's checkpoints (by step, those without mining metadata left out) form segments of
        equal mining fingerprint. The value is the completion time of the first checkpoint of the
        segment ``checkpoint`` is in, and exists only when the mining really changed: some earlier
        checkpoint (by step) has a different fingerprint. A run that always mined the same way, or
        a checkpoint without a fingerprint or a step, has none.
        """
        change = self._segment_start(checkpoint)
        return None if change is None else change[0]

    def mining_change_step(self, checkpoint: CheckpointRow) -> int | None:
        """The step of the first checkpoint of the mining segment ``checkpoint`` is in, only when
        the mining really changed (as ``mining_change_at``), else None."""
        change = self._segment_start(checkpoint)
        return None if change is None else change[1]

    def _segment_start(self, checkpoint: CheckpointRow) -> tuple[float, int] | None:
        """(earliest completion time, lowest step) of ``checkpoint``'s mining segment, when an
        earlier checkpoint (by step) has another mining fingerprint."""
        if checkpoint.mining_fingerprint is None or checkpoint.step is None:
            return None
        # Reading the run's earlier checkpoints at every scrape would cost the run's length:
        # the answer is kept until a checkpoint of the run changes.
        version = self._checkpoints.run_version(checkpoint.run)
        cached = self._segments.get(checkpoint.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        found = self._read_segment_start(checkpoint)
        if len(self._segments) > 10_000:
            self._segments.clear()
        self._segments[checkpoint.id] = (version, found)
        return found

    def _read_segment_start(self, checkpoint: CheckpointRow) -> tuple[float, int] | None:
        rows = self._db.query(
            "WITH run AS (SELECT id FROM runs WHERE name = :run), "
            "prev AS (SELECT MAX(o.step) AS step FROM checkpoints o, run "
            "WHERE o.run_id = run.id AND o.step < :step AND o.mining_fingerprint IS NOT NULL "
            "AND o.mining_fingerprint != :fp) "
            "SELECT MIN(c.completed_at), MIN(c.step) FROM checkpoints c, run, prev "
            "WHERE c.run_id = run.id AND prev.step IS NOT NULL AND c.mining_fingerprint = :fp "
            "AND c.step <= :step AND c.step > prev.step",
            {"run": checkpoint.run, "fp": checkpoint.mining_fingerprint, "step": checkpoint.step},
        )
        completed, step = rows[0]
        return None if completed is None else (float(completed), int(step))

    def counts_by_run(self) -> dict[str, int]:
        """Finished evaluations per run."""
        return self._totals.counts_by_run()

    def failures_by_run(self) -> dict[tuple[str, str], int]:
        """Failed evaluations per (run, reason)."""
        return self._totals.failures_by_run()

    def checkpoint_states(self) -> dict[str, tuple[tuple[int, int], dict[str, int]]]:
        """Per run with checkpoints: a version that changes whenever one of them is added or
        changes state, and its checkpoint counts by state (one read of the change log)."""
        return self._checkpoints.states()

    def pending_by_run(self) -> dict[str, int]:
        """Checkpoints discovered but not yet evaluated (queued or evaluating), per run."""
        states = self._checkpoints.states_by_run()
        return {r: c["discovered"] + c["evaluating"] for r, c in states.items()}

    def last_success_by_run(self) -> dict[str, float]:
        """Time of the last finished evaluation, per run."""
        return self._totals.last_success_by_run()

    def stage_histograms(self, buckets: Sequence[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per stage: cumulative counts at each bucket bound, total count and sum of seconds."""
        return self._totals.stage_histograms(buckets)

    def fn_audit_failures_by_run(self) -> dict[tuple[str, str], int]:
        """Failed false-negative audits per (run, reason)."""
        rows = self._db.query(
            "SELECT r.name, f.reason, COUNT(*) FROM fn_audit_failures f "
            "JOIN runs r ON r.id = f.run_id GROUP BY r.name, f.reason"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def exported_fn_estimate(self, checkpoint: CheckpointRow) -> FnEstimate | None:
        """The false-negative estimate to export for a checkpoint; the first that exists of:

        1. its own estimate (``Results.fn_estimate``);
        2. when it has a mining fingerprint: the newest estimate in its run of the same mined set
           (the audit runs once per mined set, not per checkpoint);
        3. when its own audit failed: the newest estimate of its run, whatever the mined set, so
           that a judge outage does not look like the rate going away (alerts on it would
           resolve).

        A checkpoint without a mining fingerprint exports only its own estimate; one whose mined
        set was never audited exports none.
        """
        own = self._results.fn_estimate(checkpoint.id)
        if own is not None or checkpoint.mining_fingerprint is None:
            return own
        same_set = self._newest_run_estimate(checkpoint.run, checkpoint.mining_fingerprint)
        if same_set is not None or self._results.fn_audit_failure(checkpoint.id) is None:
            return same_set
        return self._newest_run_estimate(checkpoint.run, None)

    def exported_fn_estimates(self, run: str) -> dict[int, FnEstimate]:
        """``exported_fn_estimate`` of every checkpoint of a run that has one, by checkpoint id,
        from one read of the run's estimates and one of its failed audits."""
        estimates = self._db.query(
            "SELECT c.id AS cid, c.mining_fingerprint AS cfp, f.* FROM runs r "
            "CROSS JOIN checkpoints c ON c.run_id = r.id "
            "CROSS JOIN fn_estimates f ON f.checkpoint_id = c.id WHERE r.name = ? ORDER BY f.id",
            (run,),
        )
        own: dict[int, FnEstimate] = {}
        newest_of_set: dict[str, FnEstimate] = {}
        newest: FnEstimate | None = None
        for row in estimates:  # oldest first: the newest of each kind is the last one seen
            stored = fn_estimate_row(row)
            own[int(row["cid"])] = stored
            if row["mining_fingerprint"] is not None:
                newest_of_set[row["mining_fingerprint"]] = stored
            newest = stored
        audit_failed = {
            int(r[0])
            for r in self._db.query(
                "SELECT f.checkpoint_id FROM runs r CROSS JOIN fn_audit_failures f "
                "ON f.run_id = r.id WHERE r.name = ?",
                (run,),
            )
        }
        out: dict[int, FnEstimate] = {}
        for cid, fp in self._db.query(
            "SELECT c.id, c.mining_fingerprint FROM runs r CROSS JOIN checkpoints c "
            "ON c.run_id = r.id WHERE r.name = ?",
            (run,),
        ):
            cid = int(cid)
            est: FnEstimate | None = own.get(cid)
            if est is None and fp is not None:
                est = newest_of_set.get(fp)
                if est is None and cid in audit_failed:
                    est = newest
            if est is not None:
                out[cid] = est
        return out

    def _newest_run_estimate(self, run: str, fingerprint: str | None) -> FnEstimate | None:
        """The newest estimate stored for a checkpoint of ``run`` (of one mined set, if given)."""
        if fingerprint is not None:
            # Through the mined set's index: the set's estimates, not the run's checkpoints.
            rows = self._db.query(
                "SELECT f.* FROM fn_estimates f JOIN checkpoints c ON c.id = f.checkpoint_id "
                "JOIN runs r ON r.id = c.run_id WHERE f.mining_fingerprint = :fp "
                "AND r.name = :run ORDER BY f.id DESC LIMIT 1",
                {"run": run, "fp": fingerprint},
            )
        else:
            rows = self._db.query(
                "SELECT f.* FROM runs r CROSS JOIN checkpoints c ON c.run_id = r.id "
                "CROSS JOIN fn_estimates f ON f.checkpoint_id = c.id WHERE r.name = :run "
                "ORDER BY f.id DESC LIMIT 1",
                {"run": run},
            )
        return fn_estimate_row(rows[0]) if rows else None
