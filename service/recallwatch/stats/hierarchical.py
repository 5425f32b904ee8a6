"""A two-level test of a metric's level before and after a change: queries and checkpoints.

Per-query values of checkpoints trained under one configuration vary for two reasons: *which*
queries a checkpoint happens to get right (query-level churn) and *how good* the checkpoint is as a
whole (checkpoint-level variation: one save is half a point better than the next). The model is
the two-way mixed model

    y[j, q] = mu[q] + level(config of j) + delta[j] + e[j, q],

with query effects ``mu`` (shared by all checkpoints, so they cancel in paired comparisons),
checkpoint effects ``delta ~ N(0, sigma_c^2)`` and residual churn ``e``. A change in level between
a *pre* group of m checkpoints and a *post* group of n is estimated by the difference of the
group means, with variance ``sigma_c^2 (1/m + 1/n)`` (checkpoints) plus the churn part, measured
from the per-query differences of the two group means (the paired part: exact for the queries at
hand, like the sign-flip test).

``sigma_c^2`` is estimated by the two-way ANOVA moments of each group of same-configuration
checkpoints (the spread of checkpoint means beyond what their churn explains), pooled over groups
(the run's own segments and, where given, the segments of earlier runs of the same held-out set:
``VarianceHistory``) and moderated by a prior ``(prior_sd, prior_df)`` the way limma moderates
gene-wise variances: ``(prior_df * prior_sd^2 + data) / (prior_df + data_df)``. Its degrees of
freedom are Satterthwaite's (``moderated_variance``): fewer than ``prior_df + data_df`` where
churn makes the spread of checkpoint means a noisy measure of ``sigma_c^2``. The statistic is
referred to Student's t with the Welch-Satterthwaite combination of those and the churn part's.
With few checkpoints the prior and the earlier runs dominate; with many, the run's own spread.

``sequential_alpha`` gives the per-look level of a test repeated as post-change checkpoints
arrive (the post mean is cumulative), so that the chance of *any* look rejecting when nothing
changed is ``alpha`` over an unbounded number of looks.

Everything is vectorised over leading batch dimensions (the simulation decides thousands of runs
in one call) and pure: no I/O, no clock; the only random draws are seeded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.stats.student_t import student_t_cdf

__all__ = [
    "CheckpointVariance",
    "LevelTest",
    "Moments",
    "VarianceHistory",
    "checkpoint_variance",
    "level_test",
    "level_test_arrays",
    "moderated_variance",
    "pooled_moments",
    "segment_moments",
    "sequential_alpha",
    "sequential_levels",
]

FloatArray = npt.NDArray[np.float64]

#: Post-change looks ``sequential_alpha`` accounts for (later looks add almost nothing: the
#: cumulative post mean has converged and the pre-change mean's error is common to all looks).
SEQUENTIAL_LOOKS = 64
_SEQUENTIAL_DRAWS = 400_000


# -- checkpoint-level variance ----------------------------------------------------------------


#: Groups of at least this many checkpoints are detrended before their spread is measured.
DETREND_MIN = 4


def segment_moments(
    values: FloatArray, *, detrend: bool = True
) -> tuple[FloatArray, int, FloatArray]:
    """The checkpoint-variance moments of one group of same-configuration checkpoints.

    ``values`` is (..., J checkpoints, N queries). Returns (excess, df, churn): ``churn`` is
    the part of one checkpoint mean's variance that query churn explains (the two-way residual
    mean square over N), and ``excess`` the sum of squared deviations of the checkpoint means
    from the group mean minus df = J - 1 times ``churn``, so that ``E[excess] = df sigma_c^2``.
    ``excess`` can be negative (no spread beyond churn). A group of one checkpoint carries
    nothing (0, 0, 0). A group of ``DETREND_MIN`` or more (``detrend``) is measured around the
    least-squares line through its checkpoint means (checkpoint order as abscissa) with J - 2
    degrees of freedom: a run that climbs within a segment is not mistaken for checkpoint noise
    (``recall_regression.trend``).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2:
        raise ValueError("values must be (..., checkpoints, queries)")
    j, n = v.shape[-2], v.shape[-1]
    if j < 2 or n < 2:
        zero = np.zeros(v.shape[:-2])
        return zero, 0, zero
    means = v.mean(axis=-1)
    grand = means.mean(axis=-1, keepdims=True)
    ss_checkpoints = ((means - grand) ** 2).sum(axis=-1)
    df = j - 1
    if detrend and j >= DETREND_MIN:
        t = np.arange(j, dtype=np.float64) - (j - 1) / 2
        slope = (means * t).sum(axis=-1) / float((t**2).sum())
        ss_checkpoints = ss_checkpoints - slope**2 * float((t**2).sum())
        df = j - 2
    resid = v - v.mean(axis=-2, keepdims=True) - means[..., None] + grand[..., None]
    churn = (resid**2).sum(axis=(-2, -1)) / ((j - 1) * (n - 1)) / n
    return (
        np.asarray(ss_checkpoints - df * churn, dtype=np.float64),
        df,
        np.asarray(churn, dtype=np.float64),
    )


@dataclass(frozen=True)
class Moments:
    """Checkpoint-variance moments of groups of same-configuration checkpoints, summed.

    Additive: the moments of several groups (segments of one run, or of many runs on the same
    held-out set) are the sum of theirs. With R_i the churn part of one checkpoint mean's
    variance in group i (``segment_moments``): ``excess`` = sum of (SS_i - (J_i - 1) R_i),
    ``df`` = sum of (J_i - 1), ``churn`` = sum of (J_i - 1) R_i, ``churn_sq`` = sum of
    (J_i - 1) R_i^2 (the last two give the estimate's Satterthwaite degrees of freedom).
    """

    excess: float = 0.0
    df: int = 0
    churn: float = 0.0
    churn_sq: float = 0.0
    groups: int = 0

    @classmethod
    def of(cls, values: FloatArray) -> Moments:
        """The moments of one group: (J checkpoints, N queries) per-query values."""
        excess, df, churn = segment_moments(np.asarray(values, dtype=np.float64))
        if not df:
            return cls()
        r = float(churn)
        return cls(float(excess), df, df * r, df * r * r, 1)

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.excess + other.excess,
            self.df + other.df,
            self.churn + other.churn,
            self.churn_sq + other.churn_sq,
            self.groups + other.groups,
        )

    @property
    def sd(self) -> float | None:
        """The groups' own estimate of the checkpoint SD (None without degrees of freedom)."""
        return math.sqrt(max(0.0, self.excess / self.df)) if self.df else None


def pooled_moments(groups: Iterable[FloatArray]) -> Moments:
    """The summed moments of groups of same-configuration checkpoints ((J, N) each)."""
    total = Moments()
    for g in groups:
        total += Moments.of(g)
    return total


@dataclass(frozen=True)
class VarianceHistory:
    """Checkpoint-variance moments pooled from earlier runs of the same held-out set.

    Plain data for the decision: the store finds the runs (``store.variance``), the caller
    computes their segments' moments; ``runs`` is how many runs contributed degrees of freedom.
    """

    moments: Moments
    runs: int
    #: (climb per checkpoint, its sampling variance) of the runs' segments of 4 or more
    #: checkpoints (``recall_regression.trend.climb_moments``): the prior of a run's climb.
    climbs: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class CheckpointVariance:
    """The checkpoint-to-checkpoint variance a level test assumed, and where it came from."""

    #: The standard deviation assumed (moderated: prior, earlier runs and this run together).
    sd: float
    #: The run's own estimate (None without same-configuration checkpoint pairs; 0 when the
    #: spread is no more than churn explains).
    data_sd: float | None
    #: Degrees of freedom from the run's checkpoints (sum of J - 1 over groups).
    data_df: int
    #: How many same-configuration groups (segments) of this run the estimate pooled.
    groups: int
    prior_sd: float
    prior_df: float
    #: Earlier runs of the same held-out set: their estimate, degrees of freedom, runs, segments.
    history_sd: float | None = None
    history_df: int = 0
    history_runs: int = 0
    history_groups: int = 0
    #: Satterthwaite degrees of freedom of the estimate (``moderated_variance``); at most
    #: ``nominal_df``, less where churn makes the checkpoint means' spread a noisy measure.
    effective_df: float | None = None

    @property
    def nominal_df(self) -> float:
        """Prior weight plus the degrees of freedom of the checkpoints (this and earlier runs)."""
        return self.prior_df + self.data_df + self.history_df

    @property
    def df(self) -> float:
        """Degrees of freedom of the assumed variance (Satterthwaite)."""
        return self.nominal_df if self.effective_df is None else self.effective_df

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "sd": self.sd,
            "data_sd": self.data_sd,
            "data_df": self.data_df,
            "groups": self.groups,
            "prior_sd": self.prior_sd,
            "prior_df": self.prior_df,
            "history_sd": self.history_sd,
            "history_df": self.history_df,
            "history_runs": self.history_runs,
            "history_groups": self.history_groups,
            "nominal_df": self.nominal_df,
            "df": self.df,
        }

    def describe(self) -> str:
        """One sentence for people: the SD assumed, in points, and its sources."""
        own = (
            f"{self.data_sd * 100:.2f} from {self.data_df} degrees of freedom of this run's "
            f"same-mining checkpoints"
            if self.data_sd is not None
            else "no same-mining checkpoint pairs in this run yet"
        )
        history = (
            f"{self.history_sd * 100:.2f} pooled from {self.history_runs} earlier "
            f"run{'s' if self.history_runs != 1 else ''} of this held-out set, "
            f"{self.history_df} degrees of freedom; "
            if self.history_sd is not None
            else ""
        )
        return (
            f"checkpoint-to-checkpoint SD {self.sd * 100:.2f} points ({history}{own}; prior "
            f"{self.prior_sd * 100:.2f} worth {self.prior_df:g}; {self.df:.1f} effective "
            f"degrees of freedom)"
        )


def moderated_variance(
    excess: FloatArray | float,
    df: FloatArray | int,
    *,
    prior_sd: float,
    prior_df: float,
    churn: FloatArray | float = 0.0,
    churn_sq: FloatArray | float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """(variance, Satterthwaite degrees of freedom) of the prior moderated by pooled moments.

    The variance is ``(prior_df prior_sd^2 + excess) / (prior_df + df)`` (never negative). Its
    degrees of freedom are not ``prior_df + df``: each group's sum of squares of checkpoint means
    is ``(sigma_c^2 + R_i) chi^2_{J_i - 1}``, churn included, so it is a noisier measure of
    ``sigma_c^2`` than ``J_i - 1`` degrees of freedom say when churn is large against the
    checkpoint variance. Satterthwaite's approximation, with the estimate in place of sigma_c^2
    (``churn`` and ``churn_sq`` from ``Moments``):

        nu = D^2 v^2 / (prior_df v^2 + sum_i (J_i - 1) (v + R_i)^2),   D = prior_df + df.

    Without churn it is D; counting the churn is what keeps the t reference from being liberal
    with few checkpoints and a large checkpoint SD. Vectorised over the arguments.
    """
    if prior_sd < 0 or prior_df <= 0:
        raise ValueError("prior_sd must be non-negative and prior_df positive")
    e, d = np.asarray(excess, dtype=np.float64), np.asarray(df, dtype=np.float64)
    c1, c2 = np.asarray(churn, dtype=np.float64), np.asarray(churn_sq, dtype=np.float64)
    total = prior_df + d
    variance = np.maximum(0.0, (prior_df * prior_sd**2 + e) / total)
    spread = total * variance**2 + 2.0 * variance * c1 + c2
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = np.where(spread > 0, total**2 * variance**2 / np.where(spread > 0, spread, 1), total)
    # A zero variance contributes nothing to the test, whatever its degrees of freedom.
    nu = np.where(variance > 0, np.minimum(nu, total), total)
    return variance, np.asarray(nu, dtype=np.float64)


def checkpoint_variance(
    groups: list[FloatArray],
    *,
    prior_sd: float,
    prior_df: float,
    history: VarianceHistory | None = None,
) -> CheckpointVariance:
    """The moderated checkpoint variance from groups of same-configuration checkpoints.

    Each group is (J, N): per-query values of J checkpoints under one configuration of this
    run. Groups of one checkpoint are skipped. ``history``: moments pooled from earlier runs of
    the same held-out set, added to the run's own.
    """
    own = pooled_moments(np.asarray(g, dtype=np.float64) for g in groups)
    past = history.moments if history is not None else Moments()
    total = own + past
    variance, nu = moderated_variance(
        total.excess,
        total.df,
        prior_sd=prior_sd,
        prior_df=prior_df,
        churn=total.churn,
        churn_sq=total.churn_sq,
    )
    return CheckpointVariance(
        sd=math.sqrt(float(variance)),
        data_sd=own.sd,
        data_df=own.df,
        groups=own.groups,
        prior_sd=prior_sd,
        prior_df=prior_df,
        history_sd=past.sd,
        history_df=past.df,
        history_runs=history.runs if history is not None and past.df else 0,
        history_groups=past.groups,
        effective_df=float(nu),
    )


# -- the level test ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelTest:
    """Post-change level minus pre-change level, with both variance components."""

    #: mean(post checkpoints) - mean(pre checkpoints), over the common queries.
    difference: float
    #: Its standard error, and the two parts of its variance.
    se: float
    se_queries: float
    se_checkpoints: float
    #: Welch-Satterthwaite degrees of freedom of the t reference.
    df: float
    statistic: float
    #: One-sided p-value for a drop (P(T <= statistic)).
    p_value: float
    pre: int
    post: int
    queries: int
    variance: CheckpointVariance

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "difference": self.difference,
            "se": self.se,
            "se_queries": self.se_queries,
            "se_checkpoints": self.se_checkpoints,
            "df": self.df,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "pre_checkpoints": self.pre,
            "post_checkpoints": self.post,
            "queries": self.queries,
            "checkpoint_variance": self.variance.as_dict(),
        }


def level_test_arrays(
    pre: FloatArray,
    post: FloatArray,
    checkpoint_var: FloatArray | float,
    df: FloatArray | float,
    pre_weights: FloatArray | None = None,
    pre_offset: FloatArray | float = 0.0,
    extra_var: FloatArray | float = 0.0,
    extra_df: float = math.inf,
) -> dict[str, FloatArray]:
    """The level test, vectorised: ``pre`` (..., m, N) and ``post`` (..., n, N) per-query values.

    ``checkpoint_var`` and ``df`` broadcast over the batch dimensions. ``pre_weights`` (m,
    summing to 1; default 1/m each): the pre level is this combination of the pre checkpoints
    (a trend's fitted end level: ``recall_regression.trend``), whose checkpoint variance is
    ``sum(w^2)`` times one checkpoint's; (..., m) weights differ by batch element.
    ``pre_offset``: a constant added to the pre level, whose uncertainty is ``extra_var`` with
    ``extra_df`` degrees of freedom (a forecast's prior part). Returns arrays
    ``difference``, ``se``, ``se_queries``, ``se_checkpoints``, ``df``, ``statistic``, ``p``.
    """
    a_pre, a_post = np.asarray(pre, dtype=np.float64), np.asarray(post, dtype=np.float64)
    m, n, queries = a_pre.shape[-2], a_post.shape[-2], a_pre.shape[-1]
    if a_post.shape[-1] != queries or m < 1 or n < 1 or queries < 2:
        raise ValueError("pre and post must be (..., checkpoints >= 1, the same queries >= 2)")
    if pre_weights is None:
        pre_level, pre_factor = a_pre.mean(axis=-2), 1.0 / m
    else:
        w = np.asarray(pre_weights, dtype=np.float64)
        if w.shape[-1:] != (m,):
            raise ValueError("pre_weights must have one weight per pre checkpoint")
        pre_level = np.einsum("...j,...jq->...q", w, a_pre)
        pre_factor = (w**2).sum(axis=-1)
    z = a_post.mean(axis=-2) - pre_level
    difference = z.mean(axis=-1) - np.asarray(pre_offset, dtype=np.float64)
    v_queries = z.var(axis=-1, ddof=1) / queries
    v_checkpoints = np.asarray(checkpoint_var, dtype=np.float64) * (pre_factor + 1.0 / n)
    v_checkpoints = np.broadcast_to(v_checkpoints, difference.shape)
    v_extra = np.broadcast_to(np.asarray(extra_var, dtype=np.float64), difference.shape)
    total = v_queries + v_checkpoints + v_extra
    nu = np.broadcast_to(np.asarray(df, dtype=np.float64), difference.shape)
    denominator = (
        v_checkpoints**2 / nu + v_queries**2 / (queries - 1) + v_extra**2 / max(extra_df, 1e-9)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        df_eff = np.where(denominator > 0, total**2 / np.where(denominator > 0, denominator, 1), nu)
        se = np.sqrt(total)
        statistic = np.where(se > 0, difference / np.where(se > 0, se, 1.0), 0.0)
    p = student_t_cdf(statistic, np.maximum(df_eff, 1e-9))
    # No variance at all: identical values (p = 1), or a difference with no noise (p = 0).
    p = np.where(se > 0, p, np.where(difference < 0, 0.0, 1.0))
    return {
        "difference": np.asarray(difference),
        "se": np.asarray(se),
        "se_queries": np.sqrt(v_queries),
        "se_checkpoints": np.sqrt(v_checkpoints + v_extra),
        "df": np.asarray(df_eff),
        "statistic": np.asarray(statistic),
        "p": np.asarray(p),
    }


def level_test(
    pre: FloatArray,
    post: FloatArray,
    variance: CheckpointVariance,
    pre_weights: FloatArray | None = None,
    pre_offset: float = 0.0,
    extra_var: float = 0.0,
    extra_df: float = math.inf,
) -> LevelTest:
    """Test whether the post level is below the pre level (one-sided), one comparison."""
    a_pre, a_post = np.atleast_2d(pre), np.atleast_2d(post)
    out = level_test_arrays(
        a_pre, a_post, variance.sd**2, variance.df, pre_weights, pre_offset, extra_var, extra_df
    )
    return LevelTest(
        difference=float(out["difference"]),
        se=float(out["se"]),
        se_queries=float(out["se_queries"]),
        se_checkpoints=float(out["se_checkpoints"]),
        df=float(out["df"]),
        statistic=float(out["statistic"]),
        p_value=float(out["p"]),
        pre=a_pre.shape[0],
        post=a_post.shape[0],
        queries=a_pre.shape[1],
        variance=variance,
    )


# -- repeated looks ---------------------------------------------------------------------------


#: Looks that get ``EARLY_SHARE`` of alpha: a mining change shows in its first checkpoints.
EARLY_LOOKS = 2
EARLY_SHARE = 0.97


@functools.lru_cache(maxsize=256)
def sequential_levels(alpha: float, pre: float) -> tuple[float, float]:
    """Per-look levels (looks 1..EARLY_LOOKS, later looks) of the repeated level test.

    At post-change look n the *cumulative* statistic (the mean of the first n post-change
    checkpoints against the mean of the ``pre`` pre-change ones) is tested, and at the first
    ``EARLY_LOOKS`` looks also the *latest* one (the n-th post-change checkpoint alone against the
    same pre mean: a drop that shows only from the second checkpoint on is not diluted by a clean
    first one). Standardised, with
    X_i iid N(0, 1) and one B ~ N(0, 1/pre) common to all looks (the pre-change mean's error,
    which never averages away), they are (mean(X_1..X_n) - B) / sqrt(1/n + 1/pre) and
    (X_n - B) / sqrt(1 + 1/pre). The first ``EARLY_LOOKS`` looks share ``EARLY_SHARE`` of alpha
    (one constant boundary: the alpha-quantile of the minimum of both statistics over them), the
    later looks (cumulative only) up to ``SEQUENTIAL_LOOKS`` the rest, so that the chance of
    *any* rejection over
    the post-change segment when nothing changed is ``alpha``. Computed from a fixed-seed draw
    of the process: a deterministic function of its arguments. The levels returned are the
    one-sided normal levels of the two boundaries. ``pre`` may be fractional: a pre level that
    is a weighted combination of checkpoints counts as ``1 / sum(w^2)`` of them.
    """
    if not 0.0 < alpha < 1.0 or pre < 1:
        raise ValueError("alpha must be in (0, 1) and pre at least 1")
    rng = np.random.default_rng(20_241_127)
    n = np.arange(1, SEQUENTIAL_LOOKS + 1, dtype=np.float64)
    scale = np.sqrt(1.0 / n + 1.0 / pre)
    early, late = [], []
    for _ in range(_SEQUENTIAL_DRAWS // 50_000):
        x = rng.standard_normal((50_000, SEQUENTIAL_LOOKS))
        common = rng.standard_normal((50_000, 1)) / math.sqrt(pre)
        cumulative = (np.cumsum(x, axis=1) / n - common) / scale
        latest = (x[:, :EARLY_LOOKS] - common) / math.sqrt(1.0 + 1.0 / pre)
        early.append(np.minimum(cumulative[:, :EARLY_LOOKS], latest).min(axis=1))
        late.append(cumulative[:, EARLY_LOOKS:].min(axis=1))
    first, rest = np.concatenate(early), np.concatenate(late)
    c_early = float(np.quantile(first, EARLY_SHARE * alpha))
    # The later boundary: P(first < c_early or rest < c_late) = alpha.
    quiet = rest[first >= c_early]
    extra = (alpha - float((first < c_early).mean())) * first.size / quiet.size
    c_late = float(np.quantile(quiet, max(extra, 1e-9)))
    return _normal_cdf(c_early), _normal_cdf(c_late)


def sequential_alpha(alpha: float, pre: float, look: int = 1) -> tuple[float, float]:
    """(cumulative, latest) levels of post-change look ``look`` (1-based), ``alpha`` over all.

    The latest checkpoint's own test counts at the first ``EARLY_LOOKS`` looks only (level 0
    after them: never significant).
    """
    if look < 1:
        raise ValueError("look must be at least 1")
    early, late = sequential_levels(alpha, pre)
    return (early, early) if look <= EARLY_LOOKS else (late, 0.0)


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
