"""The paired test of two checkpoints: per-query values of one against another's, query churn only.

Per-query values of the metric at k, paired by query id, go through a one-sided paired
randomisation test (``stats.paired_randomisation_test``: random sign flips of the per-query
differences, ``permutations`` draws, seeded, p = (1 + #{T* <= T}) / (B + 1)). The checkpoint is
*regressed* when the mean drop is at least ``min_drop`` (an effect floor, absolute) **and**
p <= ``alpha``; against a ``best`` baseline chosen among m checkpoints, p <= ``alpha / m``
(``selection_alpha``: the best of m noisy checkpoints is biased upwards). An open alert stays
open while the drop is at least ``min_drop / 2`` with p <= ``resolve_alpha``
(``RegressionVerdict.still_regressed``), so a drop near the threshold does not fire and resolve
over and over.

The rule decided with this test before the level test (``level``), which adds the
checkpoint-to-checkpoint variance it ignores; it stays for its measured numbers
(docs/alerting.md) and the simulation. Pure: plain data in, plain data out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.stats import Interval, PairedTest, mean_interval, paired_randomisation_test

__all__ = [
    "MAX_PERMUTATIONS",
    "RegressionVerdict",
    "paired_regression_test",
    "paired_values",
    "permutations_for",
    "selection_alpha",
]

FloatArray = npt.NDArray[np.float64]


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

    def still_regressed(self, resolve_alpha: float) -> bool:
        """An open alert stays open: a drop of at least min_drop / 2 with p <= ``resolve_alpha``."""
        return self.drop >= self.min_drop / 2 - 1e-12 and self.test.p_value <= resolve_alpha

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
