"""Recommend the smallest confidence filter that brings the false-negative rate to the target.

Candidates are sentence-transformers' own knobs: ``range_min`` (skip the top ranks),
``relative_margin`` and ``absolute_margin`` (skip negatives scoring within a margin of the
positive), alone and ``range_min`` combined with ``relative_margin``. For each candidate:

- the fraction of negatives it drops is exact (ranks and scores of every negative are known);
- the projected false-negative rate of what it keeps is estimated from the judged sample
  (weighted by each sampled negative's inclusion weight), with a Wilson interval on the Kish
  effective sample size.

The recommendation is the candidate that drops the fewest negatives while its projected rate —
its upper confidence bound by default (``criterion="upper"``), or its point estimate — is at most
the target. Re-mining with the filter replaces dropped negatives with deeper ones, whose rate is
lower, so the projection is on the safe side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from recallwatch.mining.margins import implied_absolute_margin, st_relative_keep
from recallwatch.mining.mined import NegativeTable
from recallwatch.stats import Interval, z_value

__all__ = [
    "Criterion",
    "FilterOption",
    "FilterSpec",
    "Recommendation",
    "recommend",
]

Criterion = Literal["upper", "estimate"]
RELATIVE_GRID = tuple(round(0.01 * i, 2) for i in range(51)) + tuple(
    round(0.05 * i, 2) for i in range(11, 21)
)
_MAX_RANGE_MIN_COMBOS = 30


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

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "family": self.family,
            "filter": self.spec.as_dict(),
            "describe": self.spec.describe(),
            "dropped_fraction": self.dropped_fraction,
            "projected": self.projected.as_dict(),
            "kept_judged": self.kept_judged,
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

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "target": self.target,
            "criterion": self.criterion,
            "needed": self.needed,
            "best": None if self.best is None else self.best.as_dict(),
            "options": [o.as_dict() for o in self.options],
            "notes": list(self.notes),
        }


def _projection(
    kept: npt.NDArray[np.bool_],
    y: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    confidence: float,
) -> tuple[Interval | None, int]:
    count = int(kept.sum())
    if count == 0:
        return None, 0
    wk = w[kept]
    total = float(wk.sum())
    p = float((wk * y[kept]).sum() / total)
    n_eff = total * total / float((wk * wk).sum())
    z = z_value(confidence)
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z / denom * float(np.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)))
    return Interval(
        p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), confidence
    ), count


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


def recommend(
    table: NegativeTable,
    sample_rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    weights: npt.NDArray[np.float64],
    *,
    target: float = 0.05,
    criterion: Criterion = "upper",
    confidence: float = 0.95,
    min_kept: int = 20,
) -> Recommendation:
    """Find the filter that drops the fewest negatives with projected rate <= ``target``.

    ``sample_rows`` are the judged sampled rows of ``table`` (unsure ones left out),
    ``false_negative`` their verdicts and ``weights`` their inclusion weights.
    """
    if not 0.0 < target < 1.0:
        raise ValueError("target must be between 0 and 1")
    notes: list[str] = []
    if sample_rows.size == 0:
        return Recommendation(target, criterion, False, None, [], ["no judged negative"])
    with_margins = table.has_scores
    if not with_margins:
        notes.append(
            "the mined set has no scores for every negative and positive: only range_min "
            "can be recommended (add 'score' and 'positive_scores', or mine with output_scores)"
        )
    y = false_negative.astype(np.float64)
    s_rank = table.rank[sample_rows]
    s_score, s_pos = table.score[sample_rows], table.positive_score[sample_rows]
    total = len(table)
    best_by_family: dict[str, FilterOption] = {}
    current: FilterOption | None = None
    for family, spec in _candidates(table, with_margins):
        kept_sample = spec.keep(s_rank, s_score, s_pos)
        projected, count = _projection(kept_sample, y, weights, confidence)
        if projected is None or count < min_kept:
            continue
        dropped = (
            1.0 - float(spec.keep(table.rank, table.score, table.positive_score).sum()) / total
        )
        option = FilterOption(family, spec, dropped, projected, count)
        if spec.is_noop:
            current = option
        value = projected.upper if criterion == "upper" else projected.estimate
        if value > target:
            continue
        held = best_by_family.get(family)
        if held is None or dropped < held.dropped_fraction - 1e-12:
            best_by_family[family] = option
    if current is not None:
        value = current.projected.upper if criterion == "upper" else current.projected.estimate
        if value <= target:
            return Recommendation(target, criterion, False, current, [current], notes)
    combo = best_by_family.get("range_min+relative_margin")
    singles = [best_by_family.get(f) for f in ("range_min", "relative_margin")]
    if combo is not None and any(
        s is not None and s.dropped_fraction <= combo.dropped_fraction + 1e-12 for s in singles
    ):
        del best_by_family["range_min+relative_margin"]  # no better than one knob alone
    options = sorted(best_by_family.values(), key=lambda o: o.dropped_fraction)
    if not options:
        notes.append(
            f"no candidate filter brings the projected rate to {target:.1%} "
            f"({'upper bound' if criterion == 'upper' else 'estimate'}) while keeping "
            f"{min_kept}+ judged negatives; judge a larger sample or mine from a cleaner model"
        )
        return Recommendation(target, criterion, True, None, [], notes)
    return Recommendation(target, criterion, True, options[0], options, notes)
