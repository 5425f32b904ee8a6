"""A checkpoint against its baseline, as its page shows it: every metric per k with a 95% interval
over per-query values, and the queries that lost and gained a relevant document in the top k.

The baseline is the regression rule's when a verdict names one, else the previous evaluated
checkpoint. Per-query values and lost queries use the alerting code's own functions
(``evaluation.outcomes.per_query_metric``, ``lost_queries``), so at an alert's baseline and k the
lost count is the alert's. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recallwatch.evaluation.outcomes import lost_queries, per_query_metric
from recallwatch.heldout.texts import TextIndex
from recallwatch.stats import Interval
from recallwatch.stats.intervals import mean_interval
from recallwatch.store import (
    CheckpointRow,
    EarlyVerdict,
    EvaluationRow,
    FnEstimate,
    Store,
    VerdictRow,
)
from recallwatch.views.checkpoints import CheckpointDetail
from recallwatch.views.rescored import RescoredEvaluation

__all__ = [
    "CheckpointView",
    "DatasetView",
    "MetricCell",
    "QueryChange",
    "checkpoint_view",
    "metric_table",
    "precision_line",
    "query_changes",
]

#: Metrics whose per-query values (and so intervals) can be recomputed from stored outcomes.
_PER_QUERY = ("recall", "success", "mrr", "ndcg")


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
    #: The metrics re-scored under the latest qrels overlay version (None: no version).
    rescored: RescoredEvaluation | None = None

    @property
    def precision_line(self) -> str | None:
        """The evaluation's precision and parity probe in one line (None: nothing stored)."""
        return precision_line(self.evaluation)


def precision_line(evaluation: EvaluationRow) -> str | None:
    """What the checkpoint page says of an evaluation's precision: its report in one line, or
    for an evaluation stored before reports, its precision and that there is no report."""
    report = evaluation.report
    if report is not None:
        return report.describe()
    if evaluation.precision is not None:
        return f"Encoded in {evaluation.precision} (no parity report: stored before reports)"
    return None


@dataclass(frozen=True)
class CheckpointView:
    """A checkpoint page: the checkpoint's detail, its baseline, lost/gained queries, verdicts."""

    detail: CheckpointDetail
    baseline: CheckpointRow | None
    baseline_why: str
    datasets: list[DatasetView]
    verdicts: list[VerdictRow]

    @property
    def checkpoint(self) -> CheckpointRow:
        """The checkpoint shown."""
        return self.detail.checkpoint

    @property
    def early(self) -> list[EarlyVerdict]:
        """The early pass' verdicts on the checkpoint (pooled upper bound before the exact)."""
        return self.detail.early

    @property
    def evaluations(self) -> list[EvaluationRow]:
        """Every evaluation of the checkpoint ever stored."""
        return self.detail.history

    @property
    def fn(self) -> FnEstimate | None:
        """The FN estimate of its mined set the pages show (``exported_fn_estimate``)."""
        return self.detail.false_negatives.exported

    @property
    def fn_own(self) -> bool:
        """Whether that estimate is the checkpoint's own (else the run's of the same set)."""
        return self.detail.false_negatives.own is not None

    @property
    def recommendation(self) -> str | None:
        """What to do about the FN estimate (None: nothing)."""
        return self.detail.false_negatives.recommendation

    @property
    def mining(self) -> Any:
        """The mining configuration the checkpoint trained with."""
        return self.detail.mining


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
    detail: CheckpointDetail,
    *,
    k: int | None = None,
    limit: int = 20,
) -> CheckpointView:
    """A checkpoint against its baseline; lost/gained at ``k`` (default: the largest k <= 10)."""
    c = detail.checkpoint
    baseline, why = _baseline(store, c)
    base_evals = (
        {e.dataset: e for e in store.results.current_evaluations(baseline.id)} if baseline else {}
    )
    views = []
    for e in detail.evaluations:
        if e.status != "done":
            continue
        outcomes = detail.outcomes[e.id]
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
        views.append(
            DatasetView(
                e.dataset,
                e,
                metric_table(e.metrics, outcomes),
                at,
                *changes,
                rescored=detail.rescored.get(e.id),
            )
        )
    return CheckpointView(
        detail=detail,
        baseline=baseline,
        baseline_why=why,
        datasets=views,
        verdicts=[v.verdict for v in detail.verdicts],
    )
