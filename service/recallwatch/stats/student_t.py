"""Student's t distribution: its CDF (vectorised) and quantiles, without scipy.

The CDF goes through the regularised incomplete beta function, evaluated by its continued
fraction (modified Lentz, Numerical Recipes 6.4); ``tests/stats/test_student_t.py`` checks it
against scipy. Pure: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["student_t_cdf", "student_t_quantile"]

FloatArray = npt.NDArray[np.float64]


def _betacf(a: FloatArray, b: FloatArray, x: FloatArray) -> FloatArray:
    """Continued fraction of the regularised incomplete beta (modified Lentz), vectorised."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1.0 / d
    h = d.copy()
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        h = h * d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        delta = d * c
        h = h * delta
        if bool(np.all(np.abs(delta - 1.0) < 1e-14)):
            break
    return h


def _betainc(a: FloatArray, b: FloatArray, x: FloatArray) -> FloatArray:
    """The regularised incomplete beta function I_x(a, b), vectorised (Numerical Recipes 6.4)."""
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    x = np.clip(x, 0.0, 1.0)
    inner = (x > 0.0) & (x < 1.0)
    xs = np.where(inner, x, 0.5)
    log_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * np.log(xs) + b * np.log1p(-xs)
    front = np.exp(log_front)
    direct = xs < (a + 1.0) / (a + b + 2.0)
    # Evaluate the fraction where it converges fast, by symmetry elsewhere.
    aa, bb, xx = np.where(direct, a, b), np.where(direct, b, a), np.where(direct, xs, 1.0 - xs)
    cf = _betacf(aa, bb, xx)
    value = np.where(direct, front * cf / a, 1.0 - front * cf / b)
    return np.where(inner, value, np.where(x <= 0.0, 0.0, 1.0))


def student_t_cdf(t: FloatArray | float, df: FloatArray | float) -> FloatArray:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (``inf``: the standard normal)."""
    tt, nu = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(df, dtype=np.float64))
    if np.any(nu <= 0):
        raise ValueError("degrees of freedom must be positive")
    normal = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)), otypes=[np.float64])
    big = ~np.isfinite(nu) | (nu > 1e7)
    safe_nu = np.where(big, 1.0, nu)
    finite_t = np.where(np.isfinite(tt), tt, 0.0)
    x = safe_nu / (safe_nu + finite_t**2)
    tail = 0.5 * _betainc(safe_nu / 2.0, np.full_like(safe_nu, 0.5), x)
    cdf = np.where(finite_t < 0, tail, 1.0 - tail)
    cdf = np.where(big, normal(finite_t) if finite_t.size else finite_t, cdf)
    cdf = np.where(np.isposinf(tt), 1.0, np.where(np.isneginf(tt), 0.0, cdf))
    return np.asarray(np.where(np.isnan(tt), np.nan, cdf), dtype=np.float64)


def student_t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection)."""
    if not 0.0 < probability < 1.0:
        raise ValueError("probability must be in (0, 1)")
    lo, hi = -1.0, 1.0
    while float(student_t_cdf(lo, df)) > probability:
        lo *= 2.0
    while float(student_t_cdf(hi, df)) < probability:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if float(student_t_cdf(mid, df)) < probability:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2.0
