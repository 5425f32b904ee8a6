"""Sequential and fixed-size tests of a Bernoulli rate.

Wald's SPRT for a false-negative rate, step by step, and the fixed-size binomial test with the same
error rates that it is compared against. Pure: no I/O, no clock, no globals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from recallwatch.stats.intervals import z_value

SPRTDecision = Literal["too_high", "acceptable", "continue", "undecided"]


@dataclass(frozen=True)
class SPRTDesign:
    """Wald's SPRT of H0: rate <= p0 against H1: rate >= p1 with error rates alpha and beta.

    ``max_labels`` truncates the test: after that many labels without a decision it reports
    ``undecided`` (Wald's test itself is open-ended; it ends with probability one).
    """

    p0: float = 0.05
    p1: float = 0.10
    alpha: float = 0.05
    beta: float = 0.05
    max_labels: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < self.p1 < 1.0:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={self.p0}, p1={self.p1}")
        for name, v in (("alpha", self.alpha), ("beta", self.beta)):
            if not 0.0 < v < 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5, got {v}")
        if self.max_labels is not None and self.max_labels < 1:
            raise ValueError("max_labels must be positive")

    @property
    def upper(self) -> float:
        """Log-likelihood ratio at or above which H0 is rejected (the rate is too high)."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """Log-likelihood ratio at or below which H0 is accepted (the rate is acceptable)."""
        return math.log(self.beta / (1 - self.alpha))

    @property
    def step_event(self) -> float:
        """Log-likelihood ratio added by a false negative."""
        return math.log(self.p1 / self.p0)

    @property
    def step_non_event(self) -> float:
        """Log-likelihood ratio added by a true negative."""
        return math.log((1 - self.p1) / (1 - self.p0))


@dataclass(frozen=True)
class SPRTStep:
    """The state of an SPRT after ``labels`` labels."""

    labels: int
    false_negatives: int
    llr: float
    decision: SPRTDecision


def _decide(llr: float, labels: int, design: SPRTDesign) -> SPRTDecision:
    if llr >= design.upper:
        return "too_high"
    if llr <= design.lower:
        return "acceptable"
    if design.max_labels is not None and labels >= design.max_labels:
        return "undecided"
    return "continue"


def sprt_update(state: SPRTStep | None, false_negative: bool, design: SPRTDesign) -> SPRTStep:
    """Add one label to an SPRT (``state`` None starts a new test); decided tests do not move."""
    if state is not None and state.decision != "continue":
        return state
    labels = (state.labels if state else 0) + 1
    fns = (state.false_negatives if state else 0) + int(false_negative)
    llr = (state.llr if state else 0.0) + (
        design.step_event if false_negative else design.step_non_event
    )
    return SPRTStep(labels, fns, llr, _decide(llr, labels, design))


def sprt_path(outcomes: Sequence[bool], design: SPRTDesign) -> list[SPRTStep]:
    """Run the SPRT label by label; the path stops at the first decision."""
    path: list[SPRTStep] = []
    state: SPRTStep | None = None
    for outcome in outcomes:
        state = sprt_update(state, bool(outcome), design)
        path.append(state)
        if state.decision != "continue":
            break
    return path


@dataclass(frozen=True)
class SPRTResult:
    """Where an SPRT over a sequence of labels ended."""

    decision: SPRTDecision
    labels: int
    false_negatives: int
    llr: float


def sprt_run(outcomes: npt.NDArray[np.bool_] | Sequence[bool], design: SPRTDesign) -> SPRTResult:
    """Run the SPRT over a whole sequence at once; same result as ``sprt_path``'s last step."""
    x = np.asarray(outcomes, dtype=bool)
    if x.ndim != 1:
        raise ValueError("outcomes must be a 1-D sequence")
    if design.max_labels is not None:
        x = x[: design.max_labels]
    if x.size == 0:
        return SPRTResult("continue", 0, 0, 0.0)
    llr = np.cumsum(np.where(x, design.step_event, design.step_non_event))
    crossed = (llr >= design.upper) | (llr <= design.lower)
    if crossed.any():
        stop = int(np.argmax(crossed))
        decision: SPRTDecision = "too_high" if llr[stop] >= design.upper else "acceptable"
    else:
        stop = x.size - 1
        full = design.max_labels is not None and x.size >= design.max_labels
        decision = "undecided" if full else "continue"
    return SPRTResult(decision, stop + 1, int(x[: stop + 1].sum()), float(llr[stop]))


@dataclass(frozen=True)
class FixedTest:
    """A fixed-size binomial test: reject H0 when at least ``critical`` of ``n`` are events."""

    n: int
    critical: int
    #: Exact type I error at p0 and type II error at p1.
    alpha: float
    beta: float


def _binomial_log_pmf(n: int, p: float) -> npt.NDArray[np.float64]:
    k = np.arange(n + 1, dtype=np.float64)
    log_choose = np.concatenate(([0.0], np.cumsum(np.log(n - k[1:] + 1) - np.log(k[1:]))))
    return log_choose + k * math.log(p) + (n - k) * math.log1p(-p)


def _upper_tails(n: int, p: float) -> npt.NDArray[np.float64]:
    """P(X >= c) for c = 0..n+1."""
    pmf = np.exp(_binomial_log_pmf(n, p))
    tails = np.concatenate((np.cumsum(pmf[::-1])[::-1], [0.0]))
    return np.minimum(tails, 1.0)


def fixed_sample_test(p0: float, p1: float, alpha: float, beta: float) -> FixedTest:
    """Smallest fixed-size binomial test of p0 against p1 with exact error rates <= alpha, beta."""
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    z_a, z_b = z_value(1 - 2 * alpha), z_value(1 - 2 * beta)
    guess = ((z_a * math.sqrt(p0 * (1 - p0)) + z_b * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2
    start = max(1, int(guess * 0.7))
    for n in range(start, int(guess * 3) + 50):
        tail0 = _upper_tails(n, p0)
        # Smallest critical value with P(X >= c | p0) <= alpha.
        critical = int(np.argmax(tail0 <= alpha))
        type_two = 1.0 - float(_upper_tails(n, p1)[critical])
        if type_two <= beta:
            if n == start:  # the guess overshot: walk down to the smallest n
                return _smallest_fixed_test(p0, p1, alpha, beta, n)
            return FixedTest(n, critical, float(tail0[critical]), type_two)
    raise ValueError("no fixed-size test found")  # pragma: no cover - the search range suffices


def _smallest_fixed_test(p0: float, p1: float, alpha: float, beta: float, n: int) -> FixedTest:
    best: FixedTest | None = None
    while n >= 1:
        tail0 = _upper_tails(n, p0)
        critical = int(np.argmax(tail0 <= alpha))
        type_two = 1.0 - float(_upper_tails(n, p1)[critical])
        if type_two > beta:
            break
        best = FixedTest(n, critical, float(tail0[critical]), type_two)
        n -= 1
    assert best is not None
    return best
