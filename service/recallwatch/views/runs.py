"""The runs: every watched run (``/runs``, ``/api/v1/runs``) and one run's history (``/runs/{run}``,
the report): its evaluated checkpoints in step order with their metrics and FN estimates, its
mining changes and its alerts.

A checkpoint's metrics are its current evaluations (``Results.current_evaluations``, the API's
``evaluations``), its false-negative estimate is ``ReadViews.exported_fn_estimate`` (what
``recallwatch_false_negative_ratio`` exports). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from recallwatch.store import (
    AlertRecord,
    CheckpointRow,
    EvaluationRow,
    FnEstimate,
    RunSummary,
    Store,
)
from recallwatch.views.rescored import RescoredEvaluation, Rescorer

__all__ = [
    "MAX_ALERTS",
    "RESCORED_POINTS",
    "TABLED",
    "Point",
    "RunHistory",
    "alerts_of_run",
    "mining_changes",
    "run_history",
    "run_names",
    "runs",
]

#: The metrics of the run table and chart (every metric is on the checkpoint page).
TABLED = ("recall", "ndcg", "unjudged")
#: How many alerts a run page or report lists at most.
MAX_ALERTS = 500
#: How many of a run's newest checkpoints the run page re-scores under a new qrels version (the
#: rest: ``recallwatch holes rescore``), so a page never re-scores a whole long history.
RESCORED_POINTS = 50


@dataclass(frozen=True)
class Point:
    """One evaluated checkpoint of a run: its step, metrics per held-out set, FN estimate."""

    checkpoint: CheckpointRow
    #: dataset -> metric -> k -> value (the API's ``evaluations[].metrics``).
    metrics: dict[str, dict[str, dict[int, float]]]
    fn: FnEstimate | None
    #: When its last current evaluation finished.
    finished_at: float = 0.0
    #: dataset -> its metrics re-scored under the latest qrels overlay version (only the newest
    #: ``RESCORED_POINTS`` checkpoints, and only held-out sets with a version).
    rescored: dict[str, RescoredEvaluation] = field(default_factory=dict)


@dataclass(frozen=True)
class RunHistory:
    """A run's evaluated checkpoints in step order, its mining changes and its alerts."""

    run: str
    points: list[Point]
    #: (step, checkpoint) where the mining fingerprint differs from the previous checkpoint's.
    mining_changes: list[tuple[int, str]]
    alerts: list[AlertRecord]
    #: Checkpoints not (yet) evaluated, by state.
    other_states: dict[str, int] = field(default_factory=dict)
    #: dataset -> the latest qrels overlay version the table re-scores under (none: no column).
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        """Held-out sets with at least one evaluation."""
        return sorted({d for p in self.points for d in p.metrics})

    @property
    def columns(self) -> list[tuple[str, str, int]]:
        """Every (dataset, metric, k) of the run table: recall@k and nDCG@k, sorted."""
        return sorted(
            {
                (d, m, k)
                for p in self.points
                for d, by_m in p.metrics.items()
                for m in by_m
                if m in TABLED
                for k in by_m[m]
            }
        )

    def opened_step(self, record: AlertRecord) -> int | None:
        """The step of the checkpoint that opened an alert.

        A firing alert names it; a resolved one names the checkpoint that resolved it, so its
        opener is taken as the run's checkpoint whose evaluation finished last before the alert
        opened (alerts are decided right after each evaluation).
        """
        if record.status == "firing" or record.alert.checkpoint is None:
            return record.alert.step
        before = [
            (p.finished_at, p.checkpoint.step)
            for p in self.points
            if p.checkpoint.step is not None and p.finished_at <= record.opened_at
        ]
        return max(before)[1] if before else record.alert.step

    @property
    def changed(self) -> set[str]:
        """Names of the checkpoints whose mining changed."""
        return {name for _, name in self.mining_changes}


def _metrics(evaluations: Sequence[EvaluationRow]) -> dict[str, dict[str, dict[int, float]]]:
    return {e.dataset: e.metrics for e in evaluations if e.status == "done"}


def mining_changes(rows: Sequence[CheckpointRow]) -> list[tuple[int, str]]:
    """Where, in step order, a checkpoint's mining fingerprint differs from the last one seen.

    Checkpoints without a step or a fingerprint are skipped (like ``mining_change_at``).
    """
    out: list[tuple[int, str]] = []
    last: str | None = None
    for c in sorted((c for c in rows if c.step is not None), key=lambda c: (c.step, c.name)):
        if c.mining_fingerprint is None:
            continue
        if last is not None and c.mining_fingerprint != last:
            assert c.step is not None
            out.append((c.step, c.name))
        last = c.mining_fingerprint
    return out


def alerts_of_run(store: Store, run: str) -> list[AlertRecord]:
    """A run's alerts, newest first (the newest ``MAX_ALERTS`` of all alerts looked at)."""
    return [a for a in store.ledger.alerts(limit=MAX_ALERTS) if a.alert.run == run]


def run_history(store: Store, run: str, rescorer: Rescorer | None = None) -> RunHistory:
    """Every evaluated checkpoint of a run (step order) with its metrics and FN estimate; with
    ``rescorer``, the newest ``RESCORED_POINTS`` also re-scored under the latest qrels version."""
    rows = store.queue.checkpoints(run)
    estimates = store.views.exported_fn_estimates(run)
    evaluated = [c for c in rows if c.state == "evaluated"]
    newest = {c.id for c in evaluated[-RESCORED_POINTS:]} if rescorer is not None else set()
    points = []
    versions: dict[str, int] = {}
    for c in evaluated:
        current = store.results.current_evaluations(c.id)
        finished = max((e.finished_at for e in current), default=c.updated_at)
        rescored = {}
        if rescorer is not None and c.id in newest:
            for e in current:
                r = rescorer.evaluation(e)
                if r is not None:
                    rescored[e.dataset] = r
                    versions[e.dataset] = r.version
        points.append(Point(c, _metrics(current), estimates.get(c.id), finished, rescored))
    others: dict[str, int] = {}
    for c in rows:
        if c.state != "evaluated":
            others[c.state] = others.get(c.state, 0) + 1
    return RunHistory(
        run, points, mining_changes(rows), alerts_of_run(store, run), others, versions
    )


def runs(store: Store) -> list[RunSummary]:
    """Every watched run: checkpoints by state, the latest evaluated one, the last evaluation."""
    return store.views.runs()


def run_names(store: Store) -> set[str]:
    """The names of the watched runs (an unknown name is a 404 on every surface)."""
    return store.views.run_names()
