"""Typed rows: what the store's aggregates take and return (never a raw ``sqlite3.Row``).

Field names are the SQL column names, JSON columns are decoded (``details``, ``metrics``), and
metric ``k`` keys are ``int`` everywhere in Python (they are strings only inside the stored JSON).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from recallwatch.records.alert import Alert
from recallwatch.records.precision import PrecisionReport

__all__ = [
    "STATES",
    "AlertRecord",
    "AlertWrite",
    "CheckpointRow",
    "CheckpointState",
    "EvaluationRow",
    "FnAuditFailure",
    "FnBucket",
    "FnEstimate",
    "NewEvaluation",
    "NewMessage",
    "RunSummary",
    "VerdictRow",
]

CheckpointState = Literal["discovered", "evaluating", "evaluated", "failed", "skipped"]
STATES: tuple[CheckpointState, ...] = ("discovered", "evaluating", "evaluated", "failed", "skipped")


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint as the store knows it.

    ``audit_only`` marks a checkpoint queued again only to retry its failed false-negative audit:
    its held-out evaluations are stored, so its directory is not needed and ``latest_only`` never
    supersedes it. It is cleared when the checkpoint becomes evaluated, failed or skipped.
    """

    id: int
    run: str
    name: str
    path: str
    step: int | None
    state: CheckpointState
    eval_key: str
    mining_fingerprint: str | None
    mining_error: str | None
    completed_at: float
    discovered_at: float
    updated_at: float
    state_reason: str | None
    state_message: str | None
    attempts: int
    audit_only: bool


@dataclass(frozen=True)
class NewEvaluation:
    """A finished evaluation of one checkpoint on one held-out set, to be recorded."""

    checkpoint_id: int
    dataset: str
    encoder: str
    config_hash: str
    started_at: float
    finished_at: float
    metrics: Mapping[str, Mapping[int, float]]
    timings: Mapping[str, float]
    counts: Mapping[str, int]
    #: query id -> relevant doc id -> 1-based rank in the top max(k), 0 when not retrieved.
    outcomes: Mapping[str, Mapping[str, int]]
    #: The encoder's numeric precision (fp32, bf16, fp16); None for precomputed embeddings.
    precision: str | None = None
    #: query id -> the top ``evaluation.stored_rankings`` document ids, best first (empty: none
    #: stored). Kept so that the history can be re-scored under another qrels version.
    rankings: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: ``records.precision.PrecisionReport.as_json()`` of the encoder (None: it said nothing).
    precision_report: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EvaluationRow:
    """A stored evaluation (done or failed); outcomes are loaded on demand."""

    id: int
    checkpoint_id: int
    dataset: str
    encoder: str
    config_hash: str
    status: Literal["done", "failed"]
    started_at: float
    finished_at: float
    #: metric -> k -> mean over the evaluated queries (empty for a failed evaluation).
    metrics: dict[str, dict[int, float]]
    timings: dict[str, float]
    counts: dict[str, int]
    reason: str | None
    message: str | None
    #: The encoder's numeric precision (fp32, bf16, fp16); None where not computed by recallwatch.
    precision: str | None = None
    #: ``records.precision.PrecisionReport.as_json()`` (None: stored before reports, or a failure).
    precision_report: dict[str, Any] | None = None

    @property
    def report(self) -> PrecisionReport | None:
        """The typed precision report (None: none stored, or one this version cannot read)."""
        if self.precision_report is None:
            return None
        try:
            return PrecisionReport.from_json(self.precision_report)
        except ValueError:
            return None


@dataclass(frozen=True)
class FnBucket:
    """The false-negative rate among sampled negatives of one mining-rank bucket (``"1-5"``)."""

    rank_bucket: str
    sample_size: int
    false_negatives: int
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class FnEstimate:
    """A false-negative estimate of the mined set a checkpoint trained on (Wilson 95% bounds)."""

    oracle: str
    sample_size: int
    false_negatives: int
    estimate: float
    lower: float
    upper: float
    random_estimate: float | None = None
    amplification: float | None = None
    buckets: tuple[FnBucket, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    #: Who judged: ``audit`` (the audit's oracles), ``review`` (people's labels on /review),
    #: ``ppi`` (a judge's labels corrected by people's, ``daemon.review_ppi``).
    source: str = "audit"


@dataclass(frozen=True)
class FnAuditFailure:
    """A failed false-negative audit of a checkpoint's mined set."""

    reason: str
    message: str
    failed_at: float


@dataclass(frozen=True)
class VerdictRow:
    """A stored regression decision for one checkpoint, held-out set, metric, k and kind."""

    id: int
    checkpoint_id: int
    dataset: str
    metric: str
    k: int
    kind: str
    baseline_checkpoint_id: int | None
    value: float
    baseline_value: float | None
    p_value: float | None
    regressed: bool
    details: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class RunSummary:
    """A run with its checkpoint counts by state and its latest evaluated checkpoint."""

    name: str
    directory: str
    states: dict[str, int]
    latest: CheckpointRow | None
    last_successful_evaluation_at: float | None


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert: its latest document and its notification bookkeeping."""

    alert: Alert
    key: str
    rule: str
    status: Literal["firing", "resolved"]
    opened_at: float
    last_notified_at: float
    resolved_at: float | None
    repeats: int


@dataclass(frozen=True)
class AlertWrite:
    """A new state of an alert, written with its outbox messages in one transaction."""

    alert: Alert
    status: Literal["firing", "resolved"]
    opened_at: float
    notified_at: float
    repeats: int


@dataclass(frozen=True)
class NewMessage:
    """A notification to enqueue for one channel (its body rendered once, sent as is)."""

    message_id: str
    alert_id: str
    channel: str
    rule: str
    event: str
    body: bytes
    created_at: float
