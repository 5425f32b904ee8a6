"""What an oracle is: it judges (query, document) pairs as relevant, not relevant or unsure.

A mined negative judged *relevant* is a false negative. Oracles may be selective (audit qrels
judge only audited queries, review labels only labelled pairs): ``eligible`` says which pairs they
can judge, and only those are sampled. Every estimate records the oracle's ``OracleInfo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recallwatch.errors import RecallwatchError

__all__ = [
    "LABELS",
    "JudgeError",
    "Judgement",
    "Label",
    "Oracle",
    "OracleInfo",
    "Pair",
]

Label = Literal["relevant", "not_relevant", "unsure"]
LABELS: tuple[Label, ...] = ("relevant", "not_relevant", "unsure")


class JudgeError(RecallwatchError):
    """A judge (model, endpoint) that could not produce judgements."""

    reason = "judge_failed"


@dataclass(frozen=True)
class Pair:
    """A (query, document) pair to judge, with the query's labelled positives for context."""

    query_id: str
    doc_id: str
    query_text: str | None = None
    doc_text: str | None = None
    positive_ids: tuple[str, ...] = ()
    positive_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """An oracle's verdict on one pair; ``label`` None means the oracle has no judgement for it."""

    label: Label | None
    #: The judge's score of (query, document), when it has one.
    score: float | None = None
    #: The judge's score of the query's (lowest-scoring) positive, when it has one.
    positive_score: float | None = None
    #: Per-judge labels of an ensemble, in judge order.
    votes: tuple[Label | None, ...] = ()


@dataclass(frozen=True)
class OracleInfo:
    """Which oracle judged an estimate, recorded with it."""

    kind: str
    #: The spec it was opened from, e.g. ``qrels:audit.tsv`` or ``model:/models/judge``.
    spec: str
    #: True when the judge is the checkpoint under evaluation itself: a label-free proxy.
    proxy: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    members: tuple[OracleInfo, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        out: dict[str, Any] = {"kind": self.kind, "spec": self.spec, "proxy": self.proxy}
        if self.details:
            out["details"] = dict(self.details)
        if self.members:
            out["members"] = [m.as_dict() for m in self.members]
        return out


@runtime_checkable
class Oracle(Protocol):
    """Judge pairs; say which pairs can be judged at all."""

    info: OracleInfo
    #: Whether ``judge`` needs query and document texts in the pairs.
    needs_text: bool
    #: Whether eligibility depends on the query alone (audit qrels) rather than on the pair
    #: (review labels); the control sample is then drawn from eligible queries only.
    judges_whole_queries: bool

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """Mask of the pairs this oracle can judge; None when it can judge every pair."""
        ...

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Return one judgement per pair, in order."""
        ...
