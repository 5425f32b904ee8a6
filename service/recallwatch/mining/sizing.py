"""How many negatives an audit judges: free judges get enough labels, paid ones a budget.

Three cases, in order:

- a size was asked for (``sample_size``) or a target half-width (``half_width``): that;
- the judge is free (``OracleInfo.free_labels`` > 0: qrels, a labels file, a local model):
  every eligible negative, a census, when that is within what it gives for free, else that many.
  A census makes every projection exact, so the recommendation is decided by the labels, never
  left at "about N more judged negatives";
- otherwise (people, a paid endpoint): ``DEFAULT_SAMPLE_SIZE`` (400) labels, about +-2.5 points
  on the headline at a 5% rate (``docs/fn-rate.md``).

The note returned says which, so the audit's output shows why the sample has its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from recallwatch.stats import sample_size_for_half_width

__all__ = ["DEFAULT_SAMPLE_SIZE", "SampleSize", "audit_sample_size"]

DEFAULT_SAMPLE_SIZE = 400


@dataclass(frozen=True)
class SampleSize:
    """The labels to draw and why."""

    size: int
    note: str
    census: bool


def audit_sample_size(
    eligible: int,
    *,
    free_labels: int = 0,
    sample_size: int | None = None,
    half_width: float | None = None,
    assumed_rate: float = 0.5,
    confidence: float = 0.95,
    judge: str = "the judge",
) -> SampleSize:
    """The sample size of an audit of ``eligible`` judgeable negatives (see the module doc)."""
    if eligible < 0 or free_labels < 0:
        raise ValueError("eligible and free_labels must be non-negative")
    if sample_size is not None:
        size = sample_size
        note = f"{size} labels requested"
    elif half_width is not None:
        size = sample_size_for_half_width(
            half_width, assumed_rate=assumed_rate, confidence=confidence, population=eligible
        )
        note = (
            f"{size} labels for a ±{half_width:.1%} interval at an assumed rate of "
            f"{assumed_rate:.0%}"
        )
    elif free_labels > 0:
        if eligible <= free_labels:
            return SampleSize(
                eligible,
                f"census of {eligible:,} negatives: {judge} is free, so every one is judged",
                True,
            )
        return SampleSize(
            free_labels,
            f"{free_labels:,} labels: {judge} is free up to that many "
            f"(of {eligible:,} eligible negatives)",
            False,
        )
    else:
        size = DEFAULT_SAMPLE_SIZE
        note = f"default {size} labels"
    return SampleSize(size, note, size >= eligible)
