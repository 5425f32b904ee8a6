"""The filter curve: per filter family, the projected FN rate against the hard negatives dropped.

For each family of sentence-transformers' filters (``range_min``, ``absolute_margin``,
``relative_margin``) and each threshold of the recommendation's own grid
(``recommend.candidate_filters``), a point: the share of negatives the filter drops (exact) and
the projected false-negative rate of what it keeps with its interval (``projection``, the same
numbers ``recommend`` weighs: ``recommend.evaluate_filters``). The recommendation is a point on
the curve of its family. People choose by the trade: fewer false negatives for fewer hard
negatives.

Each point also carries its threshold as a percentile of the miner's own margins
(``percentile``): the same margin drops 8% of one model's candidates and 84% of another's
(sentence-transformers issue #3279), while a percentile drops the same share of any model's.
``parse_threshold`` reads ``p95``-style thresholds and ``resolve_threshold`` turns them into a
value for a given mined set: ``pXX`` is the XXth percentile of the miner's implied margins
(``positive - score`` for ``absolute_margin``, ``(positive - score) / |positive|`` for
``relative_margin``) or of the mining ranks (``range_min``), so it drops about XX% of the
negatives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.mining.margins import implied_absolute_margin, implied_relative_margin
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.recommend import (
    FilterOption,
    FilterSpec,
    Recommendation,
    candidate_filters,
    evaluate_filters,
)
from recallwatch.mining.sampling import RankBuckets

__all__ = [
    "FAMILIES",
    "CurvePoint",
    "FilterCurve",
    "Percentile",
    "filter_curve",
    "parse_threshold",
    "resolve_threshold",
]

FAMILIES = ("range_min", "absolute_margin", "relative_margin")
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Percentile:
    """A threshold given as a percentile of the miner's margins (or ranks): ``p95``."""

    value: float

    def __str__(self) -> str:
        return f"p{self.value:g}"


def parse_threshold(family: str, text: str | float | int) -> float | Percentile:
    """A threshold of ``family``: a number, or ``pXX`` with 0 <= XX <= 100 (see the module)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown filter family {family!r}; expected one of {', '.join(FAMILIES)}")
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    raw = str(text).strip()
    m = _PERCENTILE.match(raw)
    if m:
        q = float(m.group(1))
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"{family}: a percentile must be between p0 and p100, got {raw!r}")
        return Percentile(q)
    try:
        return float(raw)
    except ValueError:
        raise ValueError(
            f"{family}: expected a number or a percentile of the miner's scores such as p95 "
            f"(drops about 95% of the negatives), got {raw!r}"
        ) from None


def _margins(table: NegativeTable, family: str) -> npt.NDArray[np.float64]:
    if family == "range_min":
        return table.rank.astype(np.float64)
    if not table.has_scores:
        raise ValueError(
            f"{family} needs the miner's score of every negative and positive; this set lacks some"
        )
    if family == "absolute_margin":
        return implied_absolute_margin(table.score, table.positive_score)
    return implied_relative_margin(table.score, table.positive_score)


def resolve_threshold(table: NegativeTable, family: str, value: float | Percentile) -> float:
    """The value of a threshold for this mined set (a percentile of its margins or ranks)."""
    if not isinstance(value, Percentile):
        return float(value)
    values = _margins(table, family)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{family}: the mined set has no finite margin to take a percentile of")
    q = float(np.percentile(values, value.value))
    return float(round(q)) if family == "range_min" else q


@dataclass(frozen=True)
class CurvePoint:
    """One filter on the curve."""

    option: FilterOption
    threshold: float
    #: The share of negatives whose margin (or rank) is below the threshold, in percent.
    percentile: float

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        p = self.option.projected
        return {
            "threshold": self.threshold,
            "percentile": self.percentile,
            "describe": self.option.spec.describe(),
            "dropped_fraction": self.option.dropped_fraction,
            "projected": p.as_dict(),
            "kept_judged": self.option.kept_judged,
            "kept_population": self.option.kept_population,
        }


@dataclass(frozen=True)
class FilterCurve:
    """Per family, the points in increasing threshold order, and the recommendation's point."""

    target: float
    families: dict[str, list[CurvePoint]]
    #: (family, threshold) of the recommended filter when it is a single-family filter.
    recommended: tuple[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "target": self.target,
            "families": {f: [p.as_dict() for p in pts] for f, pts in self.families.items()},
            "recommended": None
            if self.recommended is None
            else {"family": self.recommended[0], "threshold": self.recommended[1]},
        }


def _threshold(family: str, spec: FilterSpec) -> float:
    if family == "range_min":
        return float(spec.range_min)
    value = spec.absolute_margin if family == "absolute_margin" else spec.relative_margin
    return 0.0 if value is None else float(value)


def filter_curve(
    table: NegativeTable,
    sample_rows: npt.NDArray[np.int64],
    false_negative: npt.NDArray[np.bool_],
    *,
    buckets: RankBuckets | None = None,
    eligible: npt.NDArray[np.bool_] | None = None,
    confidence: float = 0.95,
    recommendation: Recommendation | None = None,
    target: float = 0.05,
) -> FilterCurve:
    """The curve of every single-knob filter family (see the module)."""
    candidates = [(f, s) for f, s in candidate_filters(table) if f in FAMILIES]
    if sample_rows.size == 0:
        return FilterCurve(target, {}, None)
    options = evaluate_filters(
        table,
        sample_rows,
        false_negative,
        candidates,
        buckets=buckets,
        eligible=eligible,
        confidence=confidence,
    )
    out: dict[str, list[CurvePoint]] = {}
    for family in FAMILIES:
        pts = [(s, o) for (f, s), o in zip(candidates, options, strict=True) if f == family]
        if not pts:
            continue
        values = np.sort(_margins(table, family))
        points = []
        for spec, option in pts:
            t = _threshold(family, spec)
            below = np.searchsorted(values, t, side="right" if family == "range_min" else "left")
            points.append(CurvePoint(option, t, 100.0 * float(below) / max(values.size, 1)))
        out[family] = sorted(points, key=lambda p: p.threshold)
    rec = None
    if recommendation is not None and recommendation.best is not None:
        best = recommendation.best
        if best.family in out:
            rec = (best.family, _threshold(best.family, best.spec))
    return FilterCurve(recommendation.target if recommendation is not None else target, out, rec)
