"""The regression decision: mining changes, baselines, the paired test, and the other alert rules.

Everything here is pure: plain functions over plain data (checkpoint summaries, per-query arrays,
numbers), no store, no clock, no I/O. The daemon gathers the data and acts on the answers.

The recall-regression rule, for one run, dataset, metric and k:

1. **Mining change.** Checkpoints ordered by step form *segments* of equal mining fingerprint
   (checkpoints without mining metadata are ignored). A checkpoint whose fingerprint differs from
   its predecessor's starts a segment: that is a mining change.
2. **Baseline.** ``previous_mining``: the best (default) or last checkpoint of the segment before
   the current one. ``same_mining``: the best (or last) earlier checkpoint of the current segment,
   which catches regressions not caused by mining. A checkpoint pinned by name overrides both.
3. **Test.** Per-query values of the metric at k, paired by query id, go through a one-sided paired
   randomisation test (``stats.paired_randomisation_test``: random sign flips of the per-query
   differences, ``permutations`` draws, seeded, p = (1 + #{T* <= T}) / (B + 1)). The checkpoint
   is *regressed* when the mean drop is at least ``min_drop`` (an effect floor, absolute) **and**
   p <= ``alpha``; against a ``best`` baseline chosen among m checkpoints, p <= ``alpha / m``
   (``selection_alpha``: the best of m noisy checkpoints is biased upwards).
4. **Confirmation.** With ``confirm`` = c, the alert fires when the last c checkpoints compared with
   the same baseline are all regressed. An open alert resolves only once a later checkpoint is
   clearly not regressed (``still_regressed``: drop below ``min_drop / 2`` or p above
   ``resolve_alpha``), so a drop near the threshold does not fire and resolve over and over.

The other rules are one-line predicates over numbers (``fn_rate_high`` ...), kept here so that
every "should we alert" question is answered in one module and tested without a daemon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from recallwatch.stats import Interval, PairedTest, mean_interval, paired_randomisation_test

__all__ = [
    "Baseline",
    "CheckpointSummary",
    "LostQuery",
    "MiningChange",
    "RegressionVerdict",
    "amplification_high",
    "below_floor",
    "choose_baseline",
    "confirmed",
    "evaluation_stale",
    "failing_streak",
    "fn_rate_high",
    "lost_queries",
    "mining_diff",
    "mining_segments",
    "paired_regression_test",
    "paired_values",
    "per_query_metric",
    "permutations_for",
    "selection_alpha",
    "still_regressed",
]

if TYPE_CHECKING:
    from recallwatch.alerting.level import LevelVerdict

FloatArray = npt.NDArray[np.float64]
Metric = Literal["recall", "success", "mrr", "ndcg"]
CompareWith = Literal["previous_mining", "same_mining"]
BaselinePolicy = Literal["best", "last"]
BaselineKind = Literal["previous_mining", "same_mining", "pinned"]


# -- mining changes and baselines -------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointSummary:
    """An evaluated checkpoint as the decision sees it: identity, step, mining, headline value."""

    id: int
    name: str
    step: int | None
    fingerprint: str | None
    #: The metric at k on the dataset under decision (``None``: not evaluated on it).
    value: float | None


@dataclass(frozen=True)
class Baseline:
    """The checkpoint a new one is compared with, and why it was chosen."""

    checkpoint: CheckpointSummary
    kind: BaselineKind
    policy: BaselinePolicy | Literal["pinned"]
    #: The first checkpoint under the current mining config (the mining change), if known.
    change: CheckpointSummary | None
    #: How many checkpoints the baseline was chosen from (``best``: all scored candidates).
    candidates: int = 1


def mining_segments(history: Sequence[CheckpointSummary]) -> list[list[CheckpointSummary]]:
    """Split checkpoints (ordered by step) into runs of equal mining fingerprint."""
    segments: list[list[CheckpointSummary]] = []
    for c in history:
        if c.fingerprint is None:
            continue
        if segments and segments[-1][-1].fingerprint == c.fingerprint:
            segments[-1].append(c)
        else:
            segments.append([c])
    return segments


def _pick(
    candidates: Iterable[CheckpointSummary], policy: BaselinePolicy
) -> tuple[CheckpointSummary, int] | None:
    """The chosen checkpoint and how many it was chosen from (1 for ``last``)."""
    scored = [c for c in candidates if c.value is not None and math.isfinite(c.value)]
    if not scored:
        return None
    if policy == "last":
        return scored[-1], 1
    # Best value; ties go to the earliest, so the baseline does not move without a reason.
    best = max(range(len(scored)), key=lambda i: (scored[i].value, -i))
    return scored[best], len(scored)


def choose_baseline(
    history: Sequence[CheckpointSummary],
    current: CheckpointSummary,
    *,
    compare_with: CompareWith = "previous_mining",
    policy: BaselinePolicy = "best",
    pinned: str | None = None,
) -> Baseline | None:
    """The baseline of ``current`` among the checkpoints before it in ``history`` (by step)."""
    ids = [c.id for c in history]
    before = list(history[: ids.index(current.id)]) if current.id in ids else list(history)
    segments = mining_segments([*before, current])
    mine = next((s for s in reversed(segments) if s[-1].id == current.id), None)
    change = mine[0] if mine is not None and len(segments) > 1 and mine is not segments[0] else None
    if pinned is not None:
        chosen = next((c for c in before if c.name == pinned and c.value is not None), None)
        return None if chosen is None else Baseline(chosen, "pinned", "pinned", change)
    if mine is None:  # the current checkpoint has no mining metadata
        return None
    kind: BaselineKind = compare_with
    if compare_with == "same_mining":
        candidates = mine[:-1]
    else:
        position = next(i for i, s in enumerate(segments) if s is mine)
        if position == 0:
            return None  # no mining change yet
        candidates = segments[position - 1]
    picked = _pick(candidates, policy)
    if picked is None:
        return None
    return Baseline(picked[0], kind, policy, mine[0], candidates=picked[1])


def selection_alpha(alpha: float, candidates: int) -> float:
    """The level of the test against a baseline chosen as the best of ``candidates`` checkpoints.

    The best of several noisy checkpoints is biased upwards, so testing against it at ``alpha``
    alarms too often when nothing changed. Rejecting "not worse than the best" at ``alpha / m``
    (Bonferroni) is a union-intersection test: it rejects only if the test against at least one
    of the m candidates would, and under "nothing changed" that happens with probability at most
    m * alpha / m = alpha, whatever the candidates' correlation.
    """
    return alpha / max(1, candidates)


#: ``permutations_for`` never asks for more sign flips than this (a decision must stay quick).
MAX_PERMUTATIONS = 200_000


def permutations_for(alpha: float, permutations: int) -> int:
    """Enough sign flips that p can fall well below ``alpha`` (p >= 1 / (B + 1)), within a cap."""
    return max(permutations, min(MAX_PERMUTATIONS, math.ceil(10.0 / alpha - 1e-9) - 1))


@dataclass(frozen=True)
class MiningChange:
    """One key of the mining metadata that changed (dotted path for nested keys)."""

    key: str
    before: Any
    after: Any
    change: Literal["added", "removed", "changed"]


_MISSING = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "(value)": value}


def mining_diff(before: Any, after: Any) -> list[MiningChange]:
    """The key-by-key difference of two mining metadata documents, sorted by key."""
    old, new = _flatten(before), _flatten(after)
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING:
            changes.append(MiningChange(key, None, b, "added"))
        elif b is _MISSING:
            changes.append(MiningChange(key, a, None, "removed"))
        elif a != b or type(a) is not type(b):
            changes.append(MiningChange(key, a, b, "changed"))
    return changes


# -- per-query values -------------------------------------------------------------------------


def per_query_metric(
    outcomes: Mapping[str, Mapping[str, int]], metric: Metric, k: int
) -> dict[str, float]:
    """Per-query metric@k from stored outcomes (query -> relevant doc -> 1-based rank, 0 = missed).

    ``ndcg`` uses binary gains: the outcomes keep which relevant documents were found, not their
    grades, so on graded judgements it differs from the evaluation's reported nDCG.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    out: dict[str, float] = {}
    for qid, ranks in outcomes.items():
        if not ranks:
            continue
        hits = sorted(r for r in ranks.values() if 0 < r <= k)
        if metric == "recall":
            out[qid] = len(hits) / len(ranks)
        elif metric == "success":
            out[qid] = 1.0 if hits else 0.0
        elif metric == "mrr":
            out[qid] = 1.0 / hits[0] if hits else 0.0
        elif metric == "ndcg":
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(ranks), k)))
            out[qid] = sum(1.0 / math.log2(r + 1) for r in hits) / ideal
        else:
            raise ValueError(f"unknown metric {metric!r}")
    return out


def paired_values(
    before: Mapping[str, float], after: Mapping[str, float]
) -> tuple[list[str], FloatArray, FloatArray]:
    """Align two per-query maps on their common query ids (in ``before``'s order)."""
    ids = [q for q in before if q in after]
    return (
        ids,
        np.fromiter((before[q] for q in ids), dtype=np.float64, count=len(ids)),
        np.fromiter((after[q] for q in ids), dtype=np.float64, count=len(ids)),
    )


# -- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionVerdict:
    """Whether a checkpoint regressed against its baseline on one metric at k, and the numbers."""

    before: Interval
    after: Interval
    #: after - before, with its paired interval.
    difference: Interval
    test: PairedTest
    alpha: float
    min_drop: float
    significant: bool
    large_enough: bool

    @property
    def regressed(self) -> bool:
        """A drop at least ``min_drop`` and significant at ``alpha``."""
        return self.significant and self.large_enough

    @property
    def drop(self) -> float:
        """before - after (positive when the metric fell)."""
        return self.before.estimate - self.after.estimate

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "difference": self.difference.as_dict(),
            "p_value": self.test.p_value,
            "queries": self.test.queries,
            "discordant": self.test.discordant,
            "permutations": self.test.permutations,
            "seed": self.test.seed,
            "alpha": self.alpha,
            "min_drop": self.min_drop,
            "significant": self.significant,
            "large_enough": self.large_enough,
            "regressed": self.regressed,
        }


def paired_regression_test(
    before: FloatArray,
    after: FloatArray,
    *,
    min_drop: float = 0.01,
    alpha: float = 0.01,
    permutations: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> RegressionVerdict:
    """Decide whether ``after`` regressed against ``before`` (paired per-query values)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be between 0 and 1")
    if min_drop < 0.0:
        raise ValueError("min_drop must be non-negative")
    test = paired_randomisation_test(before, after, permutations=permutations, seed=seed)
    b_est = mean_interval(before, confidence=confidence)
    a_est = mean_interval(after, confidence=confidence)
    diff = mean_interval(
        np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64),
        confidence=confidence,
        bounds=(-1.0, 1.0),
    )
    # The floor is on the same means the test compares; a hair of float slack keeps an exact
    # 0.01 drop (e.g. 10 of 1,000 queries) on the regressed side.
    large_enough = b_est.estimate - a_est.estimate >= min_drop - 1e-12
    return RegressionVerdict(
        before=b_est,
        after=a_est,
        difference=diff,
        test=test,
        alpha=alpha,
        min_drop=min_drop,
        significant=test.p_value <= alpha,
        large_enough=bool(large_enough),
    )


def still_regressed(verdict: RegressionVerdict | LevelVerdict, resolve_alpha: float) -> bool:
    """Whether an open alert stays open: a drop of at least min_drop / 2 with p <= resolve_alpha.

    For a level verdict (``alerting.level``) both are of the latest checkpoint alone against the
    pre level.
    """
    if isinstance(verdict, RegressionVerdict):
        return (
            verdict.drop >= verdict.min_drop / 2 - 1e-12 and verdict.test.p_value <= resolve_alpha
        )
    return verdict.still_regressed(resolve_alpha)


def confirmed(recent: Sequence[bool], confirm: int) -> bool:
    """Whether the last ``confirm`` verdicts (oldest first) are all regressions."""
    if confirm < 1:
        raise ValueError("confirm must be at least 1")
    return len(recent) >= confirm and all(recent[-confirm:])


# -- lost queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LostQuery:
    """A query that lost relevant documents from its top k, with the most telling lost document."""

    query_id: str
    #: Relevant documents in the top k before and not after.
    lost: int
    recall_before: float
    recall_after: float
    #: The lost document that ranked best before, and its ranks (0: not retrieved at all).
    doc_id: str
    rank_before: int
    rank_after: int


def lost_queries(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]], k: int
) -> list[LostQuery]:
    """Queries whose relevant documents left the top k, the largest recall drop first."""
    out = []
    for qid, ranks_before in before.items():
        ranks_after = after.get(qid)
        if ranks_after is None or not ranks_before:
            continue
        lost = [
            (r, doc)
            for doc, r in ranks_before.items()
            if 0 < r <= k and not 0 < ranks_after.get(doc, 0) <= k
        ]
        if not lost:
            continue
        rank, doc = min(lost)
        total = len(ranks_before)
        out.append(
            LostQuery(
                query_id=qid,
                lost=len(lost),
                recall_before=sum(1 for r in ranks_before.values() if 0 < r <= k) / total,
                recall_after=sum(1 for r in ranks_after.values() if 0 < r <= k) / total,
                doc_id=doc,
                rank_before=rank,
                rank_after=ranks_after.get(doc, 0),
            )
        )
    out.sort(key=lambda q: (q.recall_after - q.recall_before, q.rank_before, q.query_id))
    return out


# -- the other rules --------------------------------------------------------------------------


def fn_rate_high(lower: float, threshold: float) -> bool:
    """The FN rate is too high when its interval's lower bound exceeds ``threshold``."""
    return lower > threshold


def amplification_high(amplification: float | None, threshold: float) -> bool:
    """Label-noise amplification above ``threshold`` (unknown amplification never fires)."""
    return amplification is not None and math.isfinite(amplification) and amplification > threshold


def below_floor(value: float, floor: float) -> bool:
    """A metric below its absolute floor."""
    return value < floor


def failing_streak(failed: Sequence[bool]) -> int:
    """How many of the latest evaluations (oldest first) failed in a row."""
    streak = 0
    for f in reversed(failed):
        if not f:
            break
        streak += 1
    return streak


def evaluation_stale(
    last_evaluated_at: float | None, since: float, now: float, after_seconds: float
) -> bool:
    """No newly evaluated checkpoint for ``after_seconds`` (counted from ``since`` if never)."""
    reference = since if last_evaluated_at is None else last_evaluated_at
    return now - reference > after_seconds
