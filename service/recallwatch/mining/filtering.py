"""Mitigations: write a cleaned mined set (``recallwatch filter``).

Strategies, each deciding per negative (in ``NegativeTable`` order):

- ``confidence``: drop by rank and margin (``range_min``, ``relative_margin``,
  ``absolute_margin`` — sentence-transformers' semantics, see ``margins``);
- ``ensemble``: keep only negatives the judges agree are negative — drop a negative when at least
  ``agree`` judges call it relevant (default 1: any judge), and, unless told otherwise, when a
  judge is unsure;
- ``soft``: keep everything and attach a weight in [0, 1] from the judge's score relative to the
  positive's (``margins.soft_weight``).

The cleaned set is written in the input's own format with a summary of what was dropped and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.errors import InputError
from recallwatch.mining.estimate import FN, UNSURE
from recallwatch.mining.margins import (
    implied_absolute_margin,
    soft_weight,
    st_relative_keep,
)
from recallwatch.mining.mined import MinedSet, NegativeTable, write_recallwatch_jsonl
from recallwatch.mining.recommend import FilterSpec
from recallwatch.mining.st_formats import write_st_mined

__all__ = [
    "FilterOutcome",
    "confidence_filter",
    "ensemble_filter",
    "soft_filter",
    "write_filtered",
]


@dataclass(frozen=True)
class FilterOutcome:
    """Which negatives a strategy keeps (and their weights), and why it dropped the others."""

    strategy: str
    keep: npt.NDArray[np.bool_]
    weights: npt.NDArray[np.float64] | None = None
    #: reason -> number of negatives dropped for it (the first reason that applies).
    dropped_by: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of negatives considered."""
        return int(self.keep.size)

    @property
    def dropped(self) -> int:
        """Number of negatives dropped."""
        return int((~self.keep).sum())

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly summary."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "negatives": self.total,
            "kept": self.total - self.dropped,
            "dropped": self.dropped,
            "dropped_fraction": self.dropped / self.total if self.total else 0.0,
            "dropped_by": dict(self.dropped_by),
            **self.details,
        }
        if self.weights is not None and self.weights.size:
            out["weights"] = {
                "mean": float(self.weights.mean()),
                "zero": int((self.weights == 0).sum()),
                "below_one": int((self.weights < 1).sum()),
            }
        return out


def confidence_filter(table: NegativeTable, spec: FilterSpec) -> FilterOutcome:
    """Drop negatives by rank and score margin."""
    reasons: dict[str, npt.NDArray[np.bool_]] = {}
    reasons[f"rank <= range_min ({spec.range_min})"] = table.rank <= spec.range_min
    margins = spec.relative_margin is not None or spec.absolute_margin is not None
    if margins and not table.has_scores:
        raise InputError(
            "margin filters need the miner's score of every negative and positive; this set "
            "lacks some (mine with output_scores=True, or add score / positive_scores)"
        )
    if spec.relative_margin is not None:
        reasons[
            f"within relative_margin {spec.relative_margin:g} of the positive"
        ] = ~st_relative_keep(table.score, table.positive_score, spec.relative_margin)
    if spec.absolute_margin is not None:
        reasons[f"within absolute_margin {spec.absolute_margin:g} of the positive"] = (
            implied_absolute_margin(table.score, table.positive_score) < spec.absolute_margin
        )
    return _from_reasons("confidence", reasons, len(table), {"filter": spec.as_dict()})


def _from_reasons(
    strategy: str, reasons: dict[str, npt.NDArray[np.bool_]], total: int, details: dict[str, Any]
) -> FilterOutcome:
    dropped = np.zeros(total, dtype=bool)
    counts: dict[str, int] = {}
    for reason, mask in reasons.items():
        new = mask & ~dropped
        if new.any():
            counts[reason] = int(new.sum())
        dropped |= mask
    return FilterOutcome(strategy, ~dropped, None, counts, details)


def ensemble_filter(
    votes: Sequence[npt.NDArray[np.int8]],
    *,
    agree: int = 1,
    drop_unsure: bool = True,
    judges: Sequence[str] = (),
) -> FilterOutcome:
    """Keep negatives the judges agree are negative (``votes``: one outcome array per judge)."""
    if not votes:
        raise ValueError("the ensemble filter needs at least one judge")
    matrix = np.vstack(votes)
    if not 1 <= agree <= matrix.shape[0]:
        raise ValueError(f"agree must be between 1 and {matrix.shape[0]}")
    relevant = (matrix == FN).sum(axis=0)
    unsure = (matrix == UNSURE).sum(axis=0)
    reasons = {
        f"judged relevant by at least {agree} of {matrix.shape[0]} judges": relevant >= agree
    }
    if drop_unsure:
        reasons["a judge was unsure"] = unsure > 0
    details = {"judges": list(judges), "agree": agree, "drop_unsure": drop_unsure}
    return _from_reasons("ensemble", reasons, matrix.shape[1], details)


def soft_filter(
    score: npt.NDArray[np.float64],
    positive: npt.NDArray[np.float64],
    *,
    scale: float = 0.1,
    judge: str = "",
) -> FilterOutcome:
    """Keep every negative, weighted by its judged margin below the positive."""
    if not (np.isfinite(score).all() and np.isfinite(positive).all()):
        raise InputError(
            "soft weights need a score for every negative and its positive; the judge or the "
            "mined set lacks some"
        )
    weights = soft_weight(score, positive, scale)
    return FilterOutcome(
        "soft", np.ones(score.shape, dtype=bool), weights, {}, {"scale": scale, "judge": judge}
    )


def write_filtered(
    mined: MinedSet, table: NegativeTable, outcome: FilterOutcome, path: Path | str
) -> dict[str, Any]:
    """Write the cleaned set in the input's format; return the writer's summary."""
    if mined.format == "recallwatch":
        keeps: list[list[bool]] = [[True] * len(q.negatives) for q in mined.queries]
        weights: list[list[float]] | None = (
            [[1.0] * len(q.negatives) for q in mined.queries]
            if outcome.weights is not None
            else None
        )
        for r in range(len(table)):
            qi, ni = int(table.query_index[r]), int(table.negative_index[r])
            keeps[qi][ni] = bool(outcome.keep[r])
            if weights is not None and outcome.weights is not None:
                weights[qi][ni] = float(outcome.weights[r])
        write_recallwatch_jsonl(mined, path, keep=keeps, weights=weights)
        return {"queries": len(mined.queries)}
    keep = {
        (int(table.query_index[r]), int(table.negative_index[r])): bool(outcome.keep[r])
        for r in range(len(table))
    }
    wmap = None
    if outcome.weights is not None:
        wmap = {
            (int(table.query_index[r]), int(table.negative_index[r])): float(outcome.weights[r])
            for r in range(len(table))
        }
    summary = write_st_mined(mined, path, keep, wmap)
    return {
        "rows_in": summary.rows_in,
        "rows_out": summary.rows_out,
        "collateral_negatives": summary.collateral_negatives,
        "untouched_negatives": summary.untouched_negatives,
    }
