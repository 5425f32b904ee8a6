"""Recommend the smallest confidence filter that brings the false-negative rate to the target.

Candidates are sentence-transformers' own knobs: ``range_min`` (skip the top ranks),
``relative_margin`` and ``absolute_margin`` (skip negatives scoring within a margin of the
positive), alone and ``range_min`` combined with ``relative_margin``. For each candidate:

- the fraction of negatives it drops is exact (ranks and scores of every negative are known);
- the projected false-negative rate of what it keeps uses the headline's estimator on what it
  keeps (``projection``): per rank bucket the judged rate, weighted by the bucket's share of the
  kept judgeable negatives, with the finite-population correction of the kept population. At a
  census (every negative judged) the projection is exact, and the recommendation is the
  least-dropping filter whose true rate is at most the target.

The recommendation is the least-dropping candidate *confirmed* to meet the target. With
``criterion="upper"`` (the default) a candidate is confirmed by a test of "its rate exceeds the
target" that keeps the chance of recommending any filter whose true rate is over the target at
most ``1 - confidence`` (the familywise error), however many candidates there are. Taking the
least-dropping of ~30 nested candidates whose 95% upper bound meets the target, each tested on
its own, recommended an over-target filter in ~8% of the seeds that got a recommendation
(ranks only, 450 labels; ``docs/fn-rate.md``). The procedure:

- Families (``range_min``, ``relative_margin``, ``absolute_margin``, ``range_min`` with
  ``relative_margin``) share the error level equally (Bonferroni).
- Within a family, candidates are tested in a fixed order, most dropping first (what a
  candidate drops is known exactly and does not depend on any verdict), with Wiens' fallback
  procedure: each test gets ``alpha / m`` of the family's level (``m`` candidates), plus the
  whole level of the test before it when that one passed. A passing run of nested candidates
  thus tests at a growing level (the plain fixed-sequence test's whole level after a long run)
  while one weak candidate early in the order does not end the walk. A test at level ``a``
  passes when the projection's upper bound at confidence ``1 - a`` meets the target
  (``projection.confirming_z``).
- A candidate enters the sequence only if its judged sample could confirm a rate of half the
  target (``ADMIT_AT``; sample design only), so candidates that keep a handful of judged
  negatives do not dilute the level. Candidates whose projection is exact (every negative they
  keep is judged) carry no error: they pass when they meet the target, outside the sequence.
  At a census every projection is exact, so the recommendation is the least-dropping filter
  whose true rate is at most the target.

The no-op filter is the headline itself: when its upper bound meets the target, no filter is
needed. ``criterion="estimate"`` compares point estimates, candidate by candidate, with no error
control. Re-mining with the filter replaces dropped negatives with deeper ones, whose rate is
lower, so the projection is on the safe side. When no candidate is confirmed, ``to_decide``
says what would decide the first failing candidate of each family's sequence: about how many
more judged negatives, in which rank buckets, would bring its upper bound (at the level it was
tested at) to the target at its current estimate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from recallwatch.mining.margins import implied_absolute_margin, st_relative_keep
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.projection import (
    CandidateGrid,
    bucket_counts,
    confirmable,
    confirming_z,
    labels_to_reach,
    project,
)
from recallwatch.mining.sampling import RankBuckets
from recallwatch.stats import Interval, z_value

if TYPE_CHECKING:
    from recallwatch.mining.remine import Prescription

__all__ = [
    "Criterion",
    "FilterOption",
    "FilterSpec",
    "LabelsToDecide",
    "Recommendation",
    "candidate_filters",
    "evaluate_filters",
    "recommend",
]

Criterion = Literal["upper", "estimate"]
RELATIVE_GRID = tuple(round(0.01 * i, 2) for i in range(51)) + tuple(
    round(0.05 * i, 2) for i in range(11, 21)
)
_MAX_RANGE_MIN_COMBOS = 30
#: A candidate is tested only if its judged sample could confirm this fraction of the target.
ADMIT_AT = 0.5


@dataclass(frozen=True)
class FilterSpec:
    """A confidence filter in sentence-transformers' terms."""

    range_min: int = 0
    relative_margin: float | None = None
    absolute_margin: float | None = None

    def __post_init__(self) -> None:
        if self.range_min < 0:
            raise ValueError("range_min must be non-negative")

    @property
    def is_noop(self) -> bool:
        """Whether the filter drops nothing by construction."""
        return self.range_min == 0 and self.relative_margin is None and self.absolute_margin is None

    def describe(self) -> str:
        """Render as keyword arguments of ``mine_hard_negatives``."""
        parts = []
        if self.range_min:
            parts.append(f"range_min={self.range_min}")
        if self.relative_margin is not None:
            parts.append(f"relative_margin={self.relative_margin:g}")
        if self.absolute_margin is not None:
            parts.append(f"absolute_margin={self.absolute_margin:g}")
        return ", ".join(parts) or "no filter"

    def keep(
        self,
        rank: npt.NDArray[np.int64],
        score: npt.NDArray[np.float64],
        positive: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Mask of the negatives ``mine_hard_negatives`` keeps with this filter.

        Exactly sentence-transformers' rules (see ``margins``): a rank above ``range_min``,
        ``score <= positive * (1 - relative_margin)`` and ``score + absolute_margin <=
        positive``. Margins need finite scores; a NaN score is not kept by a margin rule.
        """
        kept = rank > self.range_min
        if self.relative_margin is not None:
            kept = kept & st_relative_keep(score, positive, self.relative_margin)
        if self.absolute_margin is not None:
            kept = kept & (implied_absolute_margin(score, positive) >= self.absolute_margin)
        return np.asarray(kept, dtype=bool)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "range_min": self.range_min,
            "relative_margin": self.relative_margin,
            "absolute_margin": self.absolute_margin,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FilterSpec:
        """Build from ``as_dict`` output (e.g. the JSON of ``recallwatch fn-rate``)."""
        return cls(int(d.get("range_min") or 0), d.get("relative_margin"), d.get("absolute_margin"))


@dataclass(frozen=True)
class FilterOption:
    """A candidate filter with what it drops and the projected rate of what it keeps."""

    family: str
    spec: FilterSpec
    dropped_fraction: float
    projected: Interval
    kept_judged: int
    #: Judgeable negatives the filter keeps: the population of its projection.
    kept_population: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "family": self.family,
            "filter": self.spec.as_dict(),
            "describe": self.spec.describe(),
            "dropped_fraction": self.dropped_fraction,
            "projected": self.projected.as_dict(),
            "kept_judged": self.kept_judged,
            "kept_population": self.kept_population,
        }


@dataclass(frozen=True)
class LabelsToDecide:
    """What would decide a candidate: more judged negatives it keeps, per rank bucket."""

    option: FilterOption
    #: Why this candidate: "fewest labels" or "drops least".
    why: str
    more_labels: int
    by_bucket: dict[str, int]

    def describe(self) -> str:
        """One sentence."""
        where = ", ".join(f"{k}: {v:,}" for k, v in self.by_bucket.items() if v)
        return (
            f"{self.option.spec.describe()} ({self.why}: drops {self.option.dropped_fraction:.1%}, "
            f"estimate {self.option.projected.estimate:.1%}, upper "
            f"{self.option.projected.upper:.1%}) needs about {self.more_labels:,} more judged "
            f"negatives among those it keeps, by mining rank {where or '-'}"
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "option": self.option.as_dict(),
            "why": self.why,
            "more_labels": self.more_labels,
            "by_bucket": dict(self.by_bucket),
            "describe": self.describe(),
        }


@dataclass(frozen=True)
class Recommendation:
    """The smallest filter meeting the target, the best of each family, and why."""

    target: float
    criterion: Criterion
    needed: bool
    best: FilterOption | None
    options: list[FilterOption]
    notes: list[str] = field(default_factory=list)
    #: When no candidate qualifies: the labels that would decide one (up to two candidates).
    to_decide: list[LabelsToDecide] = field(default_factory=list)
    #: The re-mining to run instead (``mining.remine``), when the audit had the candidate pool.
    remining: Prescription | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "target": self.target,
            "criterion": self.criterion,
            "needed": self.needed,
            "best": None if self.best is None else self.best.as_dict(),
            "options": [o.as_dict() for o in self.options],
            "notes": list(self.notes),
            "to_decide": [d.as_dict() for d in self.to_decide],
            "remining": None if self.remining is None else self.remining.as_dict(),
        }


def _candidates(table: NegativeTable, with_margins: bool) -> Iterator[tuple[str, FilterSpec]]:
    ranks = np.unique(table.rank)
    yield "range_min", FilterSpec()
    for r in ranks:
        yield "range_min", FilterSpec(int(r))
    if not with_margins:
        return
    for m in RELATIVE_GRID:
        yield "relative_margin", FilterSpec(relative_margin=m)
    gaps = implied_absolute_margin(table.score, table.positive_score)
    hi = float(np.quantile(gaps, 0.99)) if gaps.size else 0.0
    for a in np.unique(np.round(np.linspace(0.0, max(hi, 0.0), 101), 2)):
        yield "absolute_margin", FilterSpec(absolute_margin=float(a))
    for r in ranks[:_MAX_RANGE_MIN_COMBOS]:
        for m in RELATIVE_GRID[1:]:
            yield "range_min+relative_margin", FilterSpec(int(r), m)


@dataclass(frozen=True)
class _Evaluated:
    """Every candidate's counts and projection (parallel arrays)."""

    families: list[str]
    specs: list[FilterSpec]
    dropped: npt.NDArray[np.float64]
    kept_fn: npt.NDArray[np.int64]
    kept_judged: npt.NDArray[np.int64]
    kept_population: npt.NDArray[np.int64]
    estimate: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    confidence: float

    def option(self, i: int) -> FilterOption:
        return FilterOption(
            self.families[i],
            self.specs[i],
            float(self.dropped[i]),
            Interval(
                float(self.estimate[i]), float(self.lower[i]), float(self.upper[i]), self.confidence
            ),
            int(self.kept_judged[i].sum()),
            int(self.kept_population[i].sum()),
        )


def candidate_filters(table: NegativeTable) -> list[tuple[str, FilterSpec]]:
    """Every (family, filter) the recommendation weighs, in its order."""
    return list(_candidates(table, table.has_scores))


def _evaluate(
    table: NegativeTable,
    bucket: npt.NDArray[np.int64],
    num_buckets: int,
    rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    eligible: npt.NDArray[np.bool_] | None,
    confidence: float,
    candidates: list[tuple[str, FilterSpec]] | None = None,
) -> _Evaluated:
    pairs = candidate_filters(table) if candidates is None else candidates
    grid = CandidateGrid.of([(s.range_min, s.relative_margin, s.absolute_margin) for _, s in pairs])
    rank, score, pos = table.rank, table.score, table.positive_score

    def counts(sel: npt.NDArray[np.int64] | None) -> npt.NDArray[np.int64]:
        if sel is None:
            return bucket_counts(grid, rank, score, pos, bucket, num_buckets)
        return bucket_counts(grid, rank[sel], score[sel], pos[sel], bucket[sel], num_buckets)

    kept_all = counts(None)
    population = kept_all if eligible is None else counts(np.flatnonzero(eligible))
    judged = counts(rows)
    fns = counts(rows[false_negative])
    proj = project(fns, judged, population, confidence=confidence)
    dropped = 1.0 - kept_all.sum(axis=1) / max(len(table), 1)
    return _Evaluated(
        [f for f, _ in pairs],
        [s for _, s in pairs],
        dropped,
        fns,
        judged,
        population,
        proj.estimate,
        proj.lower,
        proj.upper,
        confidence,
    )


def evaluate_filters(
    table: NegativeTable,
    sample_rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    candidates: list[tuple[str, FilterSpec]],
    *,
    buckets: RankBuckets | None = None,
    eligible: npt.NDArray[np.bool_] | None = None,
    confidence: float = 0.95,
) -> list[FilterOption]:
    """What each candidate drops and its projected rate, as ``recommend`` computes them."""
    rb = buckets or RankBuckets()
    ev = _evaluate(
        table,
        rb.assign(table.rank),
        len(rb),
        np.asarray(sample_rows, dtype=np.int64),
        np.asarray(false_negative, dtype=bool),
        eligible,
        confidence,
        candidates,
    )
    return [ev.option(i) for i in range(len(candidates))]


def _least_dropping(ev: _Evaluated, chosen: npt.NDArray[np.bool_]) -> Iterator[tuple[str, int]]:
    """The least-dropping chosen candidate of each family (the first of equals)."""
    families = np.array(ev.families)
    for family in dict.fromkeys(ev.families):
        idx = np.flatnonzero(chosen & (families == family))
        if idx.size:
            least = float(ev.dropped[idx].min())
            yield family, int(idx[ev.dropped[idx] <= least + 1e-12][0])


@dataclass(frozen=True)
class _Walk:
    """The sequential test of one sequence: what passed, where it stopped."""

    ev: _Evaluated
    passed: list[int]
    #: The first candidate of the sequence that failed (None: every one passed).
    stopped_at: int | None
    #: How many candidates the sequence holds.
    length: int
    #: The error level (two-sided: 1 - confidence) ``stopped_at`` was tested at.
    stopped_level: float
    why: str = "first of the sequence to fail"


def _walk(
    ev: _Evaluated,
    members: npt.NDArray[np.int64],
    strength: npt.NDArray[np.float64],
    target: float,
    min_kept: int,
    alpha: float,
) -> _Walk:
    """Test ``members`` in a fixed order, most dropping first (see the module docstring).

    ``strength`` is each candidate's ``projection.confirming_z``: it passes a test at level
    ``a`` when its upper bound at confidence ``1 - a`` meets the target. Candidates whose
    projection is exact are decided without error and stay out of the sequence (those that
    meet the target pass). The others enter it only if their judged sample could confirm a rate
    of ``ADMIT_AT`` x target: the sample design decides membership and order, never a verdict.
    """
    judged = ev.kept_judged.sum(axis=1)
    exact = judged[members] >= ev.kept_population[members].sum(axis=1)
    passed = [int(i) for i in members[exact & (strength[members] == np.inf)]]
    tested = members[~exact]
    admitted = (judged[tested] >= min_kept) & confirmable(
        ev.kept_judged[tested],
        ev.kept_population[tested],
        ADMIT_AT * target,
        target,
        confidence=ev.confidence,
    )
    if not admitted.any():  # none could be confirmed yet: what would decide the closest one
        closest = tested[np.isfinite(strength[tested])]
        stop = int(closest[np.argmax(strength[closest])]) if closest.size else None
        return _Walk(ev, passed, stop, 0, alpha, "closest to confirmation; none is testable yet")
    tested = tested[admitted]
    order = tested[np.argsort(-ev.dropped[tested], kind="stable")].tolist()
    level, stopped, stopped_level = 0.0, None, alpha
    for i in order:
        # Each test gets alpha / len(order), plus the level of the test before it if that passed.
        level += alpha / len(order)
        if strength[i] >= z_value(1.0 - level):
            passed.append(i)
            continue
        if stopped is None:
            stopped, stopped_level = i, level
        level = 0.0
    return _Walk(ev, passed, stopped, len(order), stopped_level)


def _sequences(ev: _Evaluated, target: float, min_kept: int) -> list[_Walk]:
    """Sequential tests of every candidate but the no-op (see the module docstring)."""
    strength = confirming_z(ev.kept_fn, ev.kept_judged, ev.kept_population, target)
    alpha = 1.0 - ev.confidence
    families = np.array(ev.families)
    members = np.arange(1, len(families), dtype=np.int64)
    names = list(dict.fromkeys(ev.families[1:]))
    share = alpha / max(len(names), 1)  # Bonferroni over the families
    return [
        _walk(ev, members[families[members] == name], strength, target, min_kept, share)
        for name in names
    ]


def _to_decide(
    walks: list[_Walk], labels: list[str], target: float, min_kept: int
) -> list[LabelsToDecide]:
    """What would let each walk go on: the labels its first failing candidate needs."""
    out: list[LabelsToDecide] = []
    for walk in walks:
        if walk.stopped_at is None:
            continue
        ev, i = walk.ev, walk.stopped_at
        more = labels_to_reach(
            ev.kept_fn[i : i + 1],
            ev.kept_judged[i : i + 1],
            ev.kept_population[i : i + 1],
            target,
            confidence=1.0 - walk.stopped_level,
        )[0]
        if not np.isfinite(more).all():
            continue
        total = max(int(np.nansum(more)), min_kept - int(ev.kept_judged[i].sum()))
        by_bucket = {labels[b]: int(more[b]) for b in range(len(labels)) if more[b] > 0}
        out.append(LabelsToDecide(ev.option(i), walk.why, total, by_bucket))
    return sorted(out, key=lambda d: d.more_labels)


def recommend(
    table: NegativeTable,
    sample_rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    *,
    buckets: RankBuckets | None = None,
    eligible: npt.NDArray[np.bool_] | None = None,
    target: float = 0.05,
    criterion: Criterion = "upper",
    confidence: float = 0.95,
    min_kept: int = 20,
) -> Recommendation:
    """Find the filter that drops the fewest negatives with projected rate <= ``target``.

    ``sample_rows`` are the judged sampled rows of ``table`` (unsure ones left out) and
    ``false_negative`` their verdicts; ``buckets`` are the rank buckets of the headline estimate
    and ``eligible`` the judgeable rows the sample was drawn from (None: every row).
    """
    if not 0.0 < target < 1.0:
        raise ValueError("target must be between 0 and 1")
    notes: list[str] = []
    if sample_rows.size == 0:
        return Recommendation(target, criterion, False, None, [], ["no judged negative"])
    if not table.has_scores:
        notes.append(
            "the mined set has no scores for every negative and positive: only range_min "
            "can be recommended (add 'score' and 'positive_scores', or mine with output_scores)"
        )
    rb = buckets or RankBuckets()
    ev = _evaluate(
        table,
        rb.assign(table.rank),
        len(rb),
        np.asarray(sample_rows, dtype=np.int64),
        np.asarray(false_negative, dtype=bool),
        eligible,
        confidence,
    )
    value = ev.upper if criterion == "upper" else ev.estimate
    judged = ev.kept_judged.sum(axis=1)
    qualifies = np.isfinite(value) & (judged >= min_kept) & (value <= target + 1e-12)
    if qualifies[0]:  # the no-op filter (the headline itself): nothing to do
        current = ev.option(0)
        return Recommendation(target, criterion, False, current, [current], notes)
    walks: list[_Walk] = []
    if criterion == "upper":
        walks = _sequences(ev, target, min_kept)
        passed = np.isin(np.arange(len(ev.families)), [i for w in walks for i in w.passed])
        options = [ev.option(i) for _, i in _least_dropping(ev, passed)]
    else:
        options = [ev.option(i) for _, i in _least_dropping(ev, qualifies)]
    best_by_family = {o.family: o for o in options}  # one per family
    combo = best_by_family.get("range_min+relative_margin")
    singles = [best_by_family.get(f) for f in ("range_min", "relative_margin")]
    if combo is not None and any(
        s is not None and s.dropped_fraction <= combo.dropped_fraction + 1e-12 for s in singles
    ):
        del best_by_family["range_min+relative_margin"]  # no better than one knob alone
    options = sorted(best_by_family.values(), key=lambda o: o.dropped_fraction)
    if options:
        return Recommendation(target, criterion, True, options[0], options, notes)
    what = "upper bound" if criterion == "upper" else "estimate"
    decide = _to_decide(walks, rb.labels, target, min_kept)
    exact = bool(np.all(judged >= ev.kept_population.sum(axis=1)))
    if decide:
        head = (
            f"no candidate filter brings the projected rate to {target:.1%} ({what}) yet; "
            "what would decide it: " + "; or ".join(d.describe() for d in decide)
        )
    elif exact:
        head = (
            f"no candidate filter brings the rate to {target:.1%}: every negative is judged, "
            "so more labels cannot change this; mine from a cleaner model or raise the target"
        )
    else:
        head = (
            f"no candidate filter brings the projected rate to {target:.1%} ({what}), and the "
            "first candidate tested has an estimate above it that more labels are unlikely to "
            "confirm; mine from a cleaner model"
        )
    return Recommendation(target, criterion, True, None, [], [head, *notes], decide)
