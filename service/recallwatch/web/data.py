"""What the pages and the report show, read from the store's aggregates and views.

Every number comes from where the JSON API and the exporter take it: a checkpoint's metrics are
its current evaluations (``Results.current_evaluations``, the API's ``evaluations``), its false-
negative estimate is ``ReadViews.exported_fn_estimate`` (what ``recallwatch_fn_rate`` exports),
per-query values and lost queries use the alerting code's own functions
(``alerting.regression.per_query_metric``, ``lost_queries``). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recallwatch.alerting.evidence import recommendation
from recallwatch.alerting.regression import lost_queries, per_query_metric
from recallwatch.heldout.texts import TextIndex
from recallwatch.stats import Interval
from recallwatch.stats.intervals import mean_interval
from recallwatch.store import AlertRecord, CheckpointRow, EvaluationRow, FnEstimate, Store

__all__ = [
    "CheckpointView",
    "MetricCell",
    "QueryChange",
    "RunHistory",
    "alerts_of_run",
    "checkpoint_view",
    "metric_table",
    "query_changes",
    "run_history",
]

#: Metrics whose per-query values (and so intervals) can be recomputed from stored outcomes.
_PER_QUERY = ("recall", "success", "mrr", "ndcg")
#: The metrics of the run table and chart (every metric is on the checkpoint page).
TABLED = ("recall", "ndcg")
#: How many alerts a run page or report lists at most.
MAX_ALERTS = 500


@dataclass(frozen=True)
class Point:
    """One evaluated checkpoint of a run: its step, metrics per held-out set, FN estimate."""

    checkpoint: CheckpointRow
    #: dataset -> metric -> k -> value (the API's ``evaluations[].metrics``).
    metrics: dict[str, dict[str, dict[int, float]]]
    fn: FnEstimate | None
    #: When its last current evaluation finished.
    finished_at: float = 0.0


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


def run_history(store: Store, run: str) -> RunHistory:
    """Every evaluated checkpoint of a run (step order) with its metrics and FN estimate."""
    rows = store.queue.checkpoints(run)
    points = []
    for c in rows:
        if c.state != "evaluated":
            continue
        current = store.results.current_evaluations(c.id)
        finished = max((e.finished_at for e in current), default=c.updated_at)
        points.append(Point(c, _metrics(current), store.views.exported_fn_estimate(c), finished))
    others: dict[str, int] = {}
    for c in rows:
        if c.state != "evaluated":
            others[c.state] = others.get(c.state, 0) + 1
    return RunHistory(run, points, mining_changes(rows), alerts_of_run(store, run), others)


# -- one checkpoint -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricCell:
    """A metric at k: the evaluation's value and a 95% interval over per-query values."""

    metric: str
    k: int
    value: float
    interval: Interval | None


def metric_table(
    metrics: Mapping[str, Mapping[int, float]], outcomes: Mapping[str, Mapping[str, int]]
) -> list[MetricCell]:
    """Each metric@k with its interval (none for metrics not recomputable from outcomes)."""
    cells = []
    for metric in sorted(metrics):
        for k in sorted(metrics[metric]):
            interval = None
            if metric in _PER_QUERY and outcomes:
                values = per_query_metric(outcomes, metric, k)  # type: ignore[arg-type]
                if values:
                    interval = mean_interval(np.fromiter(values.values(), dtype=np.float64))
            cells.append(MetricCell(metric, k, metrics[metric][k], interval))
    return cells


@dataclass(frozen=True)
class QueryChange:
    """A query that lost (or gained) a relevant document in the top k against the baseline."""

    query_id: str
    query_text: str
    doc_id: str
    doc_title: str
    rank_before: int
    rank_after: int
    recall_before: float
    recall_after: float
    count: int


def query_changes(
    texts: TextIndex,
    heldout: Path | None,
    before: Mapping[str, Mapping[str, int]],
    after: Mapping[str, Mapping[str, int]],
    k: int,
    limit: int,
) -> tuple[int, list[QueryChange], int, list[QueryChange]]:
    """Queries lost and gained at k (counts, and the first ``limit`` of each with texts)."""
    lost = lost_queries(before, after, k)
    gained = lost_queries(after, before, k)  # a gain is a loss seen backwards

    def named(items: Sequence[Any], backwards: bool) -> list[QueryChange]:
        top = list(items[:limit])
        queries: dict[str, str] = {}
        titles: dict[str, str] = {}
        if heldout is not None and top:
            queries, titles = texts.lookup(
                heldout, [q.query_id for q in top], [q.doc_id for q in top]
            )
        return [
            QueryChange(
                q.query_id,
                queries.get(q.query_id, ""),
                q.doc_id,
                titles.get(q.doc_id, ""),
                q.rank_after if backwards else q.rank_before,
                q.rank_before if backwards else q.rank_after,
                q.recall_after if backwards else q.recall_before,
                q.recall_before if backwards else q.recall_after,
                q.lost,
            )
            for q in top
        ]

    return len(lost), named(lost, False), len(gained), named(gained, True)


@dataclass(frozen=True)
class DatasetView:
    """A checkpoint on one held-out set, against its baseline."""

    dataset: str
    evaluation: EvaluationRow
    cells: list[MetricCell]
    k: int
    lost_count: int
    lost: list[QueryChange]
    gained_count: int
    gained: list[QueryChange]


@dataclass(frozen=True)
class CheckpointView:
    """A checkpoint page: its evaluations, baseline, lost/gained queries, FN estimate."""

    checkpoint: CheckpointRow
    baseline: CheckpointRow | None
    baseline_why: str
    datasets: list[DatasetView]
    evaluations: list[EvaluationRow]
    fn: FnEstimate | None
    fn_own: bool
    recommendation: str | None
    mining: Any
    verdicts: list[Any]


def _baseline(store: Store, c: CheckpointRow) -> tuple[CheckpointRow | None, str]:
    """The regression rule's baseline when a verdict names one, else the previous checkpoint."""
    for v in store.ledger.verdicts(c.id):
        if v.baseline_checkpoint_id is not None:
            return store.queue.checkpoint_by_id(v.baseline_checkpoint_id), f"{v.kind} baseline"
    earlier = [
        o
        for o in store.queue.checkpoints(c.run, states=["evaluated"])
        if o.step is not None and c.step is not None and o.step < c.step
    ]
    return (earlier[-1], "previous evaluated checkpoint") if earlier else (None, "none")


def checkpoint_view(
    store: Store,
    texts: TextIndex,
    heldouts: Mapping[str, Path],
    c: CheckpointRow,
    *,
    k: int | None = None,
    limit: int = 20,
) -> CheckpointView:
    """Everything the checkpoint page shows; lost/gained at ``k`` (default: the largest k <= 10)."""
    baseline, why = _baseline(store, c)
    base_evals = (
        {e.dataset: e for e in store.results.current_evaluations(baseline.id)} if baseline else {}
    )
    current = store.results.current_evaluations(c.id)
    views = []
    for e in current:
        if e.status != "done":
            continue
        outcomes = store.results.outcomes(e.id)
        ks = sorted({kk for by_k in e.metrics.values() for kk in by_k}) or [10]
        at = k if k in ks else max([kk for kk in ks if kk <= 10] or ks[:1])
        before = base_evals.get(e.dataset)
        changes: tuple[int, list[QueryChange], int, list[QueryChange]] = (0, [], 0, [])
        if before is not None:
            changes = query_changes(
                texts,
                heldouts.get(e.dataset),
                store.results.outcomes(before.id),
                outcomes,
                at,
                limit,
            )
        views.append(DatasetView(e.dataset, e, metric_table(e.metrics, outcomes), at, *changes))
    fn = store.views.exported_fn_estimate(c)
    own = store.results.fn_estimate(c.id)
    return CheckpointView(
        checkpoint=c,
        baseline=baseline,
        baseline_why=why,
        datasets=views,
        evaluations=store.results.evaluations(c.id),
        fn=fn,
        fn_own=own is not None,
        recommendation=recommendation(fn),
        mining=store.queue.mining_content(c.mining_fingerprint) if c.mining_fingerprint else None,
        verdicts=store.ledger.verdicts(c.id),
    )
