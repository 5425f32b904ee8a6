"""The checkpoints of a run: a page of them newest first (``/api/v1/runs/{run}/checkpoints``), one
checkpoint (``/runs/{run}/checkpoints/{c}`` and its JSON twin in ``/api/v1``) and the
false-negative audit of the mined set it trained on (``.../false-negatives``).

A checkpoint shows its current evaluations, or the failure that made it fail; its history is
every evaluation ever stored; its regression verdicts are the recall-regression rules' decisions
(with their p-values). A listed checkpoint carries its own false-negative estimate, so a client
reads a run's estimates in one call. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recallwatch.alerting.evidence import recommendation
from recallwatch.store import (
    CheckpointRow,
    EarlyVerdict,
    EvaluationRow,
    FnAuditFailure,
    FnEstimate,
    Store,
    VerdictRow,
)
from recallwatch.views.paging import Page
from recallwatch.views.rescored import RescoredEvaluation, Rescorer

__all__ = [
    "STATES",
    "CheckpointDetail",
    "CheckpointItem",
    "FalseNegativeView",
    "VerdictView",
    "checkpoint_detail",
    "checkpoint_of",
    "checkpoints",
    "false_negatives",
    "shown_evaluations",
    "verdicts",
]

#: The states a checkpoint listing can be filtered by (all of them by default).
STATES = ("discovered", "evaluating", "evaluated", "failed", "skipped")

#: Per-query outcomes: query id -> relevant doc id -> rank in the top max(k), 0 when not retrieved.
Outcomes = dict[str, dict[str, int]]


def shown_evaluations(store: Store, c: CheckpointRow) -> list[EvaluationRow]:
    """Current evaluations, or the failure that made the checkpoint fail."""
    current = store.results.current_evaluations(c.id)
    if c.state == "failed":
        failed = [e for e in store.results.evaluations(c.id) if e.status == "failed"]
        return current + failed[-1:]
    return current


@dataclass(frozen=True)
class CheckpointItem:
    """A checkpoint in a listing: its row, the evaluations it shows and its own FN estimate."""

    checkpoint: CheckpointRow
    evaluations: list[EvaluationRow]
    false_negatives: FnEstimate | None = None


def checkpoints(
    store: Store, run: str, *, state: str | None, limit: int, offset: int
) -> Page[CheckpointItem]:
    """A page of a run's checkpoints (in a state), newest first by step."""
    states = [state] if state else list(STATES)
    rows = store.queue.checkpoints(
        run, states=states, newest_first=True, limit=limit, offset=offset
    )
    total = store.queue.count_checkpoints(run, states=states)
    items = [
        CheckpointItem(c, shown_evaluations(store, c), store.results.fn_estimate(c.id))
        for c in rows
    ]
    return Page(items, total, limit, offset)


@dataclass(frozen=True)
class FalseNegativeView:
    """The false-negative audit of the mined set a checkpoint trained on."""

    #: What the pages and ``recallwatch_false_negative_ratio`` show: the checkpoint's own
    #: estimate or, without one, the run's latest of the same mined set.
    exported: FnEstimate | None
    #: The checkpoint's own estimate (the API's ``false_negatives``).
    own: FnEstimate | None
    #: The latest failed audit of the checkpoint's mined set.
    failure: FnAuditFailure | None
    #: Every estimate the checkpoint had, with when it was stored, oldest first (an estimate
    #: from review labels is added as they change; the earlier ones stay).
    history: tuple[tuple[float, FnEstimate], ...] = ()

    @property
    def recommendation(self) -> str | None:
        """What to do about the exported estimate, in one sentence (None: nothing)."""
        return recommendation(self.exported)

    @property
    def options(self) -> list[Any]:
        """The candidate filters the exported estimate's recommendation weighed."""
        rec = self.exported.details.get("recommendation") if self.exported is not None else None
        return (rec.get("options") or []) if isinstance(rec, dict) else []

    @property
    def people(self) -> dict[str, Any] | None:
        """Judge-only, people-only and PPI rates and the judge's agreement (None: no people)."""
        return _detail(self.exported, "people")

    @property
    def curve(self) -> dict[str, Any] | None:
        """The filter curve per family (``mining.curve``; None: an audit from before it)."""
        return _detail(self.exported, "curve")


def _detail(est: FnEstimate | None, key: str) -> dict[str, Any] | None:
    value = None if est is None else est.details.get(key)
    return value if isinstance(value, dict) else None


def false_negatives(store: Store, c: CheckpointRow) -> FalseNegativeView:
    """The FN audit of a checkpoint's mined set: estimates and the latest failure."""
    return FalseNegativeView(
        exported=store.views.exported_fn_estimate(c),
        own=store.results.fn_estimate(c.id),
        failure=store.results.fn_audit_failure(c.id),
        history=tuple(store.results.fn_estimate_history(c.id)),
    )


@dataclass(frozen=True)
class VerdictView:
    """A regression verdict of a checkpoint, with the name of the checkpoint it compared with."""

    verdict: VerdictRow
    #: The baseline checkpoint's name (None: the verdict names none, or it is gone).
    baseline: str | None


def verdicts(store: Store, c: CheckpointRow) -> list[VerdictView]:
    """The regression verdicts stored for a checkpoint, each with its baseline's name."""
    names: dict[int, str | None] = {}
    out = []
    for v in store.ledger.verdicts(c.id):
        bid = v.baseline_checkpoint_id
        if bid is not None and bid not in names:
            try:
                names[bid] = store.queue.checkpoint_by_id(bid).name
            except IndexError:  # pruned since
                names[bid] = None
        out.append(VerdictView(v, None if bid is None else names[bid]))
    return out


@dataclass(frozen=True)
class CheckpointDetail:
    """One checkpoint: the evaluations it shows with their outcomes, its history, its mining
    metadata and its false-negative audit."""

    checkpoint: CheckpointRow
    evaluations: list[EvaluationRow]
    #: Evaluation id -> per-query outcomes, for each finished evaluation shown.
    outcomes: dict[int, Outcomes]
    #: Every evaluation ever stored, failed ones included.
    history: list[EvaluationRow]
    #: The mining configuration the checkpoint trained with (None: no metadata).
    mining: Any
    false_negatives: FalseNegativeView
    #: The regression rules' decisions on this checkpoint (empty: none decided yet).
    verdicts: list[VerdictView] = field(default_factory=list)
    #: The early pass' verdicts (pooled upper bound against the previous exact value), kept
    #: apart from the exact ones (``daemon.early``).
    early: list[EarlyVerdict] = field(default_factory=list)
    #: Evaluation id -> its metrics re-scored under the latest qrels overlay version, for each
    #: finished evaluation shown whose held-out set has one (docs/holes.md).
    rescored: dict[int, RescoredEvaluation] = field(default_factory=dict)

    @property
    def regressed(self) -> bool | None:
        """Whether any verdict says the checkpoint regressed (None: no verdict)."""
        return any(v.verdict.regressed for v in self.verdicts) if self.verdicts else None


def checkpoint_of(
    store: Store, run: str, name: str, rescorer: Rescorer | None = None
) -> CheckpointDetail | None:
    """One checkpoint of a run by name (None: no such checkpoint)."""
    c = store.queue.checkpoint(run, name)
    return None if c is None else checkpoint_detail(store, c, rescorer)


def _rescored(
    rescorer: Rescorer | None, shown: list[EvaluationRow]
) -> dict[int, RescoredEvaluation]:
    out = {}
    for e in shown:
        r = None if rescorer is None else rescorer.evaluation(e)
        if r is not None:
            out[e.id] = r
    return out


def checkpoint_detail(
    store: Store, c: CheckpointRow, rescorer: Rescorer | None = None
) -> CheckpointDetail:
    """Everything shown of one checkpoint (with ``rescorer``: re-scored under the latest qrels
    version too)."""
    shown = shown_evaluations(store, c)
    return CheckpointDetail(
        checkpoint=c,
        evaluations=shown,
        outcomes={e.id: store.results.outcomes(e.id) for e in shown if e.status == "done"},
        history=store.results.evaluations(c.id),
        mining=store.queue.mining_content(c.mining_fingerprint) if c.mining_fingerprint else None,
        false_negatives=false_negatives(store, c),
        verdicts=verdicts(store, c),
        early=store.early.for_checkpoint(c.id),
        rescored=_rescored(rescorer, shown),
    )
