"""The paired randomisation (sign-flip) test of per-query differences.

The regression decision uses it, vectorised over many tests at once. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

#: Rows of random signs drawn per batch: bounds one test's memory to ~ 2,048 x queries x 8 bytes.
_SIGN_BATCH_ROWS = 2_048
Alternative = Literal["less", "two-sided"]


def paired_randomisation_pvalues(
    differences: npt.NDArray[np.float64],
    *,
    permutations: int = 10_000,
    seed: int = 0,
    alternative: Alternative = "less",
) -> npt.NDArray[np.float64]:
    """P-values of the sign-flip test for each column of ``differences`` (queries x tests).

    The statistic is the sum of the per-query differences (after - before). Under the null the
    sign of each difference is exchangeable, so ``permutations`` random sign vectors give its null
    distribution; ``alternative="less"`` tests for a drop. With the +1 correction
    p = (1 + #{T* <= T}) / (permutations + 1), never 0, exact in level.

    The random signs depend on ``seed`` and the number of queries only, so every column (and every
    call with the same seed) sees the same draws: the test is a deterministic function of its data.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError("differences must be a vector or a (queries, tests) matrix")
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    if not np.isfinite(d).all():
        raise ValueError("differences must be finite")
    n, tests = d.shape
    total = d.sum(axis=0)
    # A sign vector s = 2b - 1 (b in {0, 1}) gives T* = 2 b.d - T, so T* <= T  <=>  b.d <= T,
    # and |T*| >= |T|  <=>  |2 b.d - T| >= |T|. Float sums of equal values can differ in the last
    # bits: ties count as extreme, within a tolerance.
    tol = 1e-9 * np.maximum(np.abs(d).sum(axis=0), 1.0)
    rng = np.random.default_rng(seed)
    count = np.zeros(tests, dtype=np.int64)
    left = permutations
    while left > 0:
        rows = min(left, _SIGN_BATCH_ROWS)
        packed = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
        bits = np.unpackbits(packed, axis=1, count=n).astype(np.float64)
        flipped = bits @ d
        if alternative == "less":
            count += (flipped <= total + tol).sum(axis=0)
        else:
            count += (np.abs(2.0 * flipped - total) >= np.abs(total) - tol).sum(axis=0)
        left -= rows
    return np.asarray((1.0 + count) / (permutations + 1.0), dtype=np.float64)


@dataclass(frozen=True)
class PairedTest:
    """The outcome of a paired randomisation test."""

    p_value: float
    mean_difference: float
    queries: int
    #: Queries whose value differs between the two checkpoints (the only ones that carry signal).
    discordant: int
    permutations: int
    seed: int
    alternative: Alternative


def paired_randomisation_test(
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
    *,
    permutations: int = 10_000,
    seed: int = 0,
    alternative: Alternative = "less",
) -> PairedTest:
    """Paired sign-flip test of ``after`` vs ``before`` (per-query values, same order)."""
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if b.shape != a.shape or b.ndim != 1:
        raise ValueError("before and after must be vectors of the same length")
    if b.size == 0:
        raise ValueError("a paired test needs at least one query")
    d = a - b
    p = float(
        paired_randomisation_pvalues(
            d, permutations=permutations, seed=seed, alternative=alternative
        )[0]
    )
    return PairedTest(
        p_value=p,
        mean_difference=float(d.mean()),
        queries=int(d.size),
        discordant=int(np.count_nonzero(d)),
        permutations=permutations,
        seed=seed,
        alternative=alternative,
    )
