"""Simulation of the regression rule with checkpoint-level variance, and the docs table.

The model (shared with ``tests/alerting/rules/recall_regression/test_simulation.py``, which runs a
few cells of it). A held-out set of 1,000 queries with 1-3 relevant documents each (50/30/20%).
Each (query, relevant document) pair has a latent easiness a ~ N(0, 1), drawn afresh per simulated
run. A checkpoint j of quality q_j retrieves the document in its top 10 when a + q_j + tau * e > 0,
with e ~ N(0, 1) drawn per checkpoint:

- ``tau`` is query-level churn: two checkpoints of equal quality disagree on the recall@10 of
  10% (tau 0.155), 15% (0.245) or 20% (0.34) of the queries;
- q_j = q(config) + delta_j with delta_j ~ N(0, s^2): checkpoint-level variation, s chosen so
  that the checkpoint's expected recall@10 has a standard deviation of ``checkpoint_sd`` points
  (0 to 1) around its configuration's level;
- q(config) gives an expected recall@10 of 0.70 before the mining change, and 0.70 ("nothing
  changed") or 0.67 ("a sustained 3-point drop") after it.

A run has ``pre`` checkpoints before the mining change and ``post`` after it. The decision at each
post-change checkpoint is the daemon's (``alerting.rules.recall_regression.level``): the level test
of the post checkpoints so far against the pre-change ones, at ``look_alpha`` (the per-look level
that keeps alpha per mining change), ``min_drop`` 0.01, and the latest checkpoint not clearly back;
the checkpoint variance pools the pre-change segment, ``--history-runs`` earlier runs of the same
held-out set (each simulated like this one, ``--history-shape`` checkpoints before and after its
own mining change, no change in level) and the rule's prior, with Satterthwaite's degrees of
freedom (``stats.moderated_variance``).

    # the issue's scenario: 2 checkpoints before the change, history of 10 earlier 2 + 2 runs
    python bench/regression_simulation.py --pre 2 --history-runs 10
    python bench/regression_simulation.py --pre 2 --known-sd     # the ceiling: SD known exactly
    python bench/regression_simulation.py --pre 20                # no history, 20 before
    python bench/regression_simulation.py --draws 500 --sd 0.7 --churn 0.2   # one quick cell
    # runs climbing before the change (issue 25): earlier runs of 6 + 2 climbing alike
    python bench/regression_simulation.py --climb flat 0.25 0.5 sat --sd 0 0.5 1.0 \
        --churn 0.10 0.20 --pre 6 --draws 3000 --history-runs 10 --history-shape 6 2
    # ... 10 and 20 checkpoints before the change, earlier runs as long (10 + 2, 20 + 2); with
    # --history-shape 6 2 at --pre 20: earlier runs shorter than this one (a limit)
    python bench/regression_simulation.py --climb flat 0.25 0.5 sat --sd 0 0.5 1.0 \
        --churn 0.10 0.20 --pre 20 --draws 1000 --history-runs 10 --history-shape 20 2
    # ... a long segment's climb always read by a line (what trend.CURVE_Z gives curves back)
    python bench/regression_simulation.py --climb sat --pre 20 --history-shape 20 2 --no-curve ...
    # runs unlike their predecessors: a flat run among earlier runs that climbed 0.5 per checkpoint
    python bench/regression_simulation.py --climb flat --history-climb 0.5 --sd 0 0.5 1.0 \
        --churn 0.10 0.20 --pre 6 --draws 1000 --history-runs 10 --history-shape 6 2
    # ... the same draws without the forecast's guard (what it protects against)
    python bench/regression_simulation.py --climb flat --history-climb 0.5 --no-guard ...
    # ... without reading a flat run as flat (the forecast even where its climb is within a
    # standard error of 0: what trend.FLAT_Z gives flat runs back)
    python bench/regression_simulation.py --climb flat --sd 1.0 --no-flat ...
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.alerting.rules.recall_regression.level import level_decisions, look_alpha
from recallwatch.alerting.rules.recall_regression.trend import (
    CURVE_Z,
    FLAT_Z,
    MIN_CLIMB_SEGMENTS,
    MIN_TREND_CHECKPOINTS,
    climb_moments,
    forecast_terms,
    pool_climbs,
)
from recallwatch.stats.hierarchical import moderated_variance, segment_moments

FloatArray = npt.NDArray[np.float64]

QUERIES = 1_000
#: Query-level churn (share of queries whose recall@10 differs between two checkpoints of equal
#: quality) -> tau of the model, calibrated once over 200,000 query pairs.
TAU = {0.10: 0.155, 0.15: 0.245, 0.20: 0.34}
LEVEL = 0.70


@dataclass(frozen=True)
class Rule:
    """The rule's settings the simulation decides with (the defaults of config.py)."""

    alpha: float = 0.01
    min_drop: float = 0.01
    resolve_alpha: float = 0.2
    checkpoint_sd: float = 0.01
    checkpoint_sd_weight: float = 4.0


@dataclass(frozen=True)
class Cell:
    """One cell's outcome."""

    checkpoint_sd: float
    churn: float
    measured_churn: float
    measured_sd: float
    false_alarms: float
    detection: float
    draws: int
    #: The same draws decided by today's rule (the pre level is the segment's mean) and by the
    #: known-trend ceiling (the pre-change trend known exactly and taken out, then the mean at
    #: the whole alpha, the checkpoint variance estimated as the rule does).
    today_false_alarms: float = math.nan
    today_detection: float = math.nan
    ceiling_false_alarms: float = math.nan
    ceiling_detection: float = math.nan


#: Pre-change climbs: ``flat``, a straight climb of 0.25 or 0.5 points per checkpoint, or ``sat``
#: (a saturating curve: 3 points over the segment, most of it early, flattening at the end).
CLIMBS = ("flat", "0.25", "0.5", "sat")


def climb_levels(climb: str, pre: int) -> FloatArray:
    """Expected recall@10 of the ``pre`` pre-change checkpoints; the last one is at LEVEL."""
    j = np.arange(pre, dtype=np.float64)
    if climb == "flat" or pre < 2:
        return np.full(pre, LEVEL)
    if climb == "sat":
        shape = (np.exp(-3.0 * j / (pre - 1)) - math.exp(-3.0)) / (1 - math.exp(-3.0))
        return LEVEL - 0.03 * shape
    return LEVEL - float(climb) / 100 * (pre - 1 - j)


def _slope(tau: float) -> float:
    """d(expected recall@10) / dq at the 0.70 level: converts recall points into quality."""
    scale = math.sqrt(1 + tau**2)
    return NormalDist().pdf(NormalDist().inv_cdf(LEVEL)) / scale


def simulate_runs(
    *,
    draws: int,
    checkpoint_sd: float,
    tau: float,
    drop: float,
    pre: int,
    post: int,
    seed: int,
    pre_levels: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per-query recall@10 of ``draws`` runs: (draws, pre, N) and (draws, post, N).

    ``pre_levels``: the expected recall@10 of each pre-change checkpoint (default LEVEL each: a
    flat run; ``climb_levels``); after the change LEVEL - ``drop`` (a plateau at the last pre
    level, or a drop from it)."""
    rng = np.random.default_rng(seed)
    relevant = rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=QUERIES)
    starts = np.concatenate([[0], np.cumsum(relevant)[:-1]])
    scale = math.sqrt(1 + tau**2)
    levels = np.full(pre, LEVEL) if pre_levels is None else np.asarray(pre_levels)
    q_post = NormalDist().inv_cdf(LEVEL - drop) * scale
    shift_sd = checkpoint_sd / _slope(tau)
    easiness = rng.standard_normal((draws, int(relevant.sum()))).astype(np.float32)

    def checkpoint(quality: float) -> FloatArray:
        delta = (shift_sd * rng.standard_normal((draws, 1))).astype(np.float32)
        jitter = rng.standard_normal(easiness.shape, dtype=np.float32)
        hit = easiness + np.float32(quality) + delta + np.float32(tau) * jitter > 0
        return np.asarray(np.add.reduceat(hit, starts, axis=1) / relevant, dtype=np.float64)

    before = np.stack([checkpoint(NormalDist().inv_cdf(float(v)) * scale) for v in levels], axis=1)
    after = np.stack([checkpoint(q_post) for _ in range(post)], axis=1)
    return before, after


@dataclass(frozen=True)
class Pooled:
    """``stats.hierarchical.Moments`` for a batch of draws: one value per draw in each field."""

    excess: FloatArray
    df: int
    churn: FloatArray
    churn_sq: FloatArray
    #: (climb, its sampling variance) per draw of each segment of MIN_TREND_CHECKPOINTS or more
    #: (``trend.climb_moments``, as ``variance.PastVariance`` collects them).
    climbs: tuple[tuple[FloatArray, FloatArray], ...] = ()

    @classmethod
    def of(cls, values: FloatArray) -> Pooled:
        """The moments of one segment per draw: ``values`` (draws, J, N)."""
        excess, df, churn = segment_moments(values)
        climbs = (
            (climb_moments(values.mean(axis=2)),)
            if values.shape[1] >= MIN_TREND_CHECKPOINTS
            else ()
        )
        return cls(excess, df, df * churn, df * churn**2, climbs)

    @classmethod
    def zero(cls, draws: int) -> Pooled:
        """No groups."""
        return cls(np.zeros(draws), 0, np.zeros(draws), np.zeros(draws))

    def __add__(self, other: Pooled) -> Pooled:
        return Pooled(
            self.excess + other.excess,
            self.df + other.df,
            self.churn + other.churn,
            self.churn_sq + other.churn_sq,
            self.climbs + other.climbs,
        )


def history_moments(
    *,
    draws: int,
    checkpoint_sd: float,
    tau: float,
    runs: int,
    shape: tuple[int, int],
    seed: int,
    climb: str = "flat",
    climb_sd: float = 0.0,
) -> Pooled:
    """Checkpoint-variance moments pooled over ``runs`` earlier runs of the same held-out set.

    Each earlier run is simulated like the run under decision (its own queries' easiness and
    checkpoint qualities, the same checkpoint SD and churn), with ``shape`` = (checkpoints before,
    after) its mining change, its pre-change checkpoints climbing as ``climb`` (``climb_levels``)
    and its post-change ones at the last pre-change level; each of its two segments contributes
    its J - 1 degrees of freedom (J - 2 from 4 checkpoints on: detrended), as ``store.variance``
    and the rule pool them, and its climb where it has 4 or more checkpoints. ``climb_sd``: the
    SD (points per checkpoint) of each earlier run's straight climb around ``climb``'s (runs that
    climb unlike each other). Returns the summed moments, one value per draw (arrays).
    """
    total = Pooled.zero(draws)
    rng = np.random.default_rng(seed * 31 + 17)
    for r in range(runs):
        levels = climb_levels(climb, shape[0])
        if climb_sd:
            levels = levels - rng.normal(0.0, climb_sd / 100) * (shape[0] - 1 - np.arange(shape[0]))
        before, after = simulate_runs(
            draws=draws,
            checkpoint_sd=checkpoint_sd,
            tau=tau,
            drop=0.0,
            pre=shape[0],
            post=shape[1],
            seed=seed * 7_919 + r,
            pre_levels=levels,
        )
        total += Pooled.of(before) + Pooled.of(after)
    return total


def decide_runs(
    before: FloatArray,
    after: FloatArray,
    rule: Rule,
    history: Pooled | None = None,
    *,
    known_sd: float | None = None,
    trend: bool = True,
    known_trend: FloatArray | None = None,
    guard: bool = True,
    flat_z: float | None = FLAT_Z,
    curve_z: float | None = CURVE_Z,
) -> npt.NDArray[np.bool_]:
    """The rule's verdict at every post-change look: (draws, post) booleans.

    ``trend``: the daemon's pre level (the forecast of the climb's end from MIN_TREND_CHECKPOINTS
    on, with the climbs of the history's long segments as its prior:
    ``recall_regression.trend``); off, today's (the segment's mean). ``known_trend``: the
    expected level of each pre checkpoint, subtracted before a mean pre level is taken (with
    ``known_sd``: the known-trend ceiling).

    The checkpoint variance pools, like the daemon's (``recall_regression.level.level_plan``): the
    pre-change segment, the earlier runs' ``history`` moments, and the rule's prior.
    ``known_sd``: the true checkpoint SD instead (the ceiling no estimate can beat: what the
    test could do if the variance were known exactly). ``guard`` and ``flat_z``: the forecast's
    (``trend.forecast_terms``; off only to measure what they do).
    """
    draws = before.shape[0]
    if known_trend is not None:
        before = before - (np.asarray(known_trend) - known_trend[-1])[None, :, None]
        trend = False
    past = history if history is not None else Pooled.zero(draws)
    # The run's own pre-change segment pools its variance, not its climb (the daemon's: the
    # prior comes from other runs only).
    own = Pooled.of(before)
    pooled = replace(own, climbs=()) + past
    var, nu = moderated_variance(
        pooled.excess,
        pooled.df,
        prior_sd=rule.checkpoint_sd,
        prior_df=rule.checkpoint_sd_weight,
        churn=pooled.churn,
        churn_sq=pooled.churn_sq,
    )
    if known_sd is not None:
        var, nu = np.full(draws, known_sd**2), np.full(draws, np.inf)
    # The daemon's (``level.decide_level`` and ``level.pre_forecast``).
    unit = var + segment_moments(before)[2]
    prior: dict[str, Any] = {}
    if len(past.climbs) >= MIN_CLIMB_SEGMENTS:
        climbs = np.stack([c for c, _ in past.climbs], axis=1)
        variances = np.stack([v for _, v in past.climbs], axis=1)
        mean, _, p = pool_climbs(climbs, variances)
        prior = {"prior_mean": mean, "prior_var": p, "prior_df": float(len(past.climbs) - 1)}
    terms = forecast_terms(
        before.mean(axis=2),
        unit,
        trend=trend,
        guard=guard,
        flat_z=flat_z,
        curve_z=curve_z,
        **prior,
    )
    pre = np.maximum(1, np.ceil(terms.effective_pre() - 1e-9)).astype(np.int64)
    looks = []
    for n in range(after.shape[1]):
        alpha, latest_alpha = np.zeros(draws), np.zeros(draws)
        for value in np.unique(pre):
            at = pre == value
            alpha[at], latest_alpha[at] = look_alpha(
                rule.alpha, int(value), sequential=True, look=n + 1
            )
        looks.append(
            level_decisions(
                before,
                after[:, : n + 1],
                var,
                nu,
                min_drop=rule.min_drop,
                alpha=alpha,
                latest_alpha=latest_alpha,
                resolve_alpha=rule.resolve_alpha,
                terms=terms,
            )
        )
    return np.stack(looks, axis=1)


def run_cell(
    checkpoint_sd: float,
    churn: float,
    *,
    draws: int = 2_000,
    pre: int = 5,
    post: int = 6,
    within: int = 2,
    rule: Rule = Rule(),
    history_runs: int = 0,
    history_shape: tuple[int, int] = (2, 2),
    known_sd: bool = False,
    seed: int = 0,
    chunk: int = 500,
    climb: str = "flat",
    compare: bool = False,
    history_climb_sd: float = 0.0,
    history_climb: str | None = None,
    guard: bool = True,
    flat_z: float | None = FLAT_Z,
    curve_z: float | None = CURVE_Z,
) -> Cell:
    """False alarms (any alert over ``post`` looks, nothing changed) and detection of a sustained
    3-point drop within ``within`` looks, over ``draws`` runs each; with the checkpoint-variance
    moments of ``history_runs`` earlier runs (``history_shape`` checkpoints before and after
    their own mining change), or with the true checkpoint SD (``known_sd``: the ceiling).

    ``climb``: the pre-change segment's shape (``climb_levels``); the controls plateau at the
    last pre-change level, the damaged runs drop 3 points from it. The earlier runs climb alike
    (``history_climb_sd``: each one's straight climb off by that SD, points per checkpoint), or
    as ``history_climb`` (runs unlike their predecessors: a flat run among climbing ones).
    ``guard`` off: the prior is not widened by the run's own deviation (``trend.forecast_terms``);
    ``flat_z`` None: a run that reads flat is not decided by the mean (``trend.FLAT_Z``).
    ``compare``: decide the same draws with today's rule (mean pre level) and the known-trend
    ceiling as well."""
    tau = TAU[churn]
    levels = climb_levels(climb, pre)
    alarms, detected, churns, sds = 0, 0, [], []
    other = {"today": [0, 0], "ceiling": [0, 0]}
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        cell_seed = seed * 1_000_003 + int(checkpoint_sd * 1000) * 101 + int(churn * 100)
        for drop, scenario in ((0.0, 1), (0.03, 2)):
            run_seed = cell_seed * 7 + scenario * 100_003 + start
            before, after = simulate_runs(
                draws=size,
                checkpoint_sd=checkpoint_sd,
                tau=tau,
                drop=drop,
                pre=pre,
                post=post if drop == 0.0 else within,
                seed=run_seed,
                pre_levels=levels,
            )
            history = (
                history_moments(
                    draws=size,
                    checkpoint_sd=checkpoint_sd,
                    tau=tau,
                    runs=history_runs,
                    shape=history_shape,
                    seed=run_seed,
                    climb=climb if history_climb is None else history_climb,
                    climb_sd=history_climb_sd,
                )
                if history_runs
                else None
            )
            verdicts = decide_runs(
                before,
                after,
                rule,
                history,
                known_sd=checkpoint_sd if known_sd else None,
                guard=guard,
                flat_z=flat_z,
                curve_z=curve_z,
            )
            if compare:
                today = decide_runs(before, after, rule, history, trend=False)
                ceiling = decide_runs(before, after, rule, history, known_trend=levels)
                for name, v in (("today", today), ("ceiling", ceiling)):
                    looks = v if drop == 0.0 else v[:, :within]
                    other[name][drop != 0.0] += int(looks.any(axis=1).sum())
            if drop == 0.0:
                alarms += int(verdicts.any(axis=1).sum())
                churns.append(float((before[:, 0] != before[:, 1]).mean()))
                sds.append(float(before.mean(axis=2).std(axis=1, ddof=1).mean()))
            else:
                detected += int(verdicts[:, :within].any(axis=1).sum())
    return Cell(
        checkpoint_sd,
        churn,
        float(np.mean(churns)),
        float(np.mean(sds)),
        alarms / draws,
        detected / draws,
        draws,
        *(
            (
                other["today"][0] / draws,
                other["today"][1] / draws,
                other["ceiling"][0] / draws,
                other["ceiling"][1] / draws,
            )
            if compare
            else (math.nan,) * 4
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=2_000)
    parser.add_argument("--pre", type=int, default=20)
    parser.add_argument("--post", type=int, default=6)
    parser.add_argument("--sd", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.7, 1.0])
    parser.add_argument("--churn", type=float, nargs="*", default=[0.10, 0.15, 0.20])
    parser.add_argument("--prior-sd", type=float, default=Rule().checkpoint_sd * 100)
    parser.add_argument("--prior-weight", type=float, default=Rule().checkpoint_sd_weight)
    parser.add_argument(
        "--history-runs",
        type=int,
        default=0,
        help="earlier runs of the same held-out set whose segments' variance is pooled",
    )
    parser.add_argument(
        "--history-shape",
        type=int,
        nargs=2,
        default=[2, 2],
        metavar=("BEFORE", "AFTER"),
        help="checkpoints of each earlier run before and after its mining change (default 2 2)",
    )
    parser.add_argument(
        "--known-sd",
        action="store_true",
        help="decide with the true checkpoint SD (the ceiling of any variance estimate)",
    )
    parser.add_argument(
        "--climb",
        nargs="*",
        default=None,
        choices=CLIMBS,
        help="pre-change climbs (flat, 0.25 or 0.5 points per checkpoint, sat: saturating 3 "
        "points): the table adds today's rule and the known-trend ceiling on the same draws",
    )
    parser.add_argument(
        "--history-climb-sd",
        type=float,
        default=0.0,
        help="SD (points per checkpoint) of each earlier run's climb around the cell's (runs that "
        "climb unlike each other; default 0: alike)",
    )
    parser.add_argument(
        "--history-climb",
        default=None,
        choices=CLIMBS,
        help="the earlier runs climb like this instead of like the run (a run unlike its "
        "predecessors: e.g. --climb flat --history-climb 0.5)",
    )
    parser.add_argument(
        "--no-guard",
        action="store_true",
        help="the forecast without its guard (the prior not widened by the run's own deviation)",
    )
    parser.add_argument(
        "--no-flat",
        action="store_true",
        help="the forecast even where the run reads flat (trend.FLAT_Z: the mean there)",
    )
    parser.add_argument(
        "--no-curve",
        action="store_true",
        help="the run's own climb always a straight line's slope (trend.CURVE_Z: from "
        "trend.CURVE_FROM checkpoints a quadratic's end where the segment curves)",
    )
    args = parser.parse_args()
    if args.climb:
        _climb_table(args)
        return
    rule = Rule(checkpoint_sd=args.prior_sd / 100, checkpoint_sd_weight=args.prior_weight)
    source = (
        "the true checkpoint SD (known)"
        if args.known_sd
        else f"prior SD {rule.checkpoint_sd * 100:g} points worth {rule.checkpoint_sd_weight:g}"
        + (
            f", history of {args.history_runs} earlier runs of "
            f"{args.history_shape[0]} + {args.history_shape[1]} checkpoints"
            if args.history_runs
            else ", no history"
        )
    )
    print(
        f"pre {args.pre}, post {args.post}, {args.draws} draws per cell, alpha {rule.alpha}, "
        f"{source}"
    )
    print("| checkpoint SD | churn | false alarms per mining change | detection within 2 |")
    print("|---|---|---|---|")
    for sd in args.sd:
        for churn in args.churn:
            t0 = time.perf_counter()
            cell = run_cell(
                sd / 100,
                churn,
                draws=args.draws,
                pre=args.pre,
                post=args.post,
                rule=rule,
                history_runs=args.history_runs,
                history_shape=(args.history_shape[0], args.history_shape[1]),
                known_sd=args.known_sd,
            )
            print(
                f"| {sd:.2f} | {cell.measured_churn:.1%} | {cell.false_alarms:.2%} | "
                f"{cell.detection:.2%} |  <!-- {time.perf_counter() - t0:.0f} s -->",
                flush=True,
            )


def _climb_table(args: argparse.Namespace) -> None:
    """The climbing grid: the daemon's rule, today's (mean pre level) and the ceiling."""
    print(
        f"pre {args.pre}, post {args.post}, {args.draws} draws per cell, alpha {Rule().alpha}, "
        f"history of {args.history_runs} earlier runs of {args.history_shape[0]} + "
        f"{args.history_shape[1]} checkpoints climbing "
        + (f"as {args.history_climb}" if args.history_climb else "alike")
        + f" (climb SD {args.history_climb_sd:g} point per checkpoint)"
        + (", no guard" if args.no_guard else "")
        + (", no flat reading (the forecast everywhere)" if args.no_flat else "")
        + (", own climb always a line" if args.no_curve else "")
        + "; controls plateau at the last pre-change "
        "level, damaged runs drop 3 points from it (detection within 2 looks)"
    )
    print(
        "| climb | checkpoint SD | churn | false alarms: forecast / today / ceiling "
        "| detection: forecast / today / ceiling | forecast / ceiling |"
    )
    print("|---|---|---|---|---|---|")
    for climb in args.climb:
        for sd in args.sd:
            for churn in args.churn:
                t0 = time.perf_counter()
                c = run_cell(
                    sd / 100,
                    churn,
                    draws=args.draws,
                    pre=args.pre,
                    post=args.post,
                    history_runs=args.history_runs,
                    history_shape=(args.history_shape[0], args.history_shape[1]),
                    climb=climb,
                    compare=True,
                    history_climb_sd=args.history_climb_sd,
                    history_climb=args.history_climb,
                    guard=not args.no_guard,
                    flat_z=None if args.no_flat else FLAT_Z,
                    curve_z=None if args.no_curve else CURVE_Z,
                )
                ratio = c.detection / c.ceiling_detection if c.ceiling_detection else math.nan
                print(
                    f"| {climb} | {sd:.2f} | {churn:.0%} | {c.false_alarms:.2%} / "
                    f"{c.today_false_alarms:.2%} / {c.ceiling_false_alarms:.2%} | "
                    f"{c.detection:.1%} / {c.today_detection:.1%} / {c.ceiling_detection:.1%} | "
                    f"{ratio:.1%} |  <!-- {time.perf_counter() - t0:.0f} s -->",
                    flush=True,
                )


if __name__ == "__main__":
    main()
