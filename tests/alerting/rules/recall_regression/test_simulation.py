"""Simulation of the regression rule over thousands of checkpoint pairs (must-show 4).

The model. A held-out set of 1,000 queries with 1-3 relevant documents each (50/30/20%). Each
(query, relevant document) pair has a latent easiness a ~ N(0, 1), drawn afresh per simulated
pair of checkpoints. A checkpoint of quality q retrieves the document in its top 10 when
a + q + tau * e > 0, with e ~ N(0, 1) drawn per checkpoint: tau is checkpoint-to-checkpoint jitter
(with tau = 0.2, two checkpoints of equal quality disagree on the recall@10 of ~13% of the
queries, which is more churn than consecutive checkpoints of one training run usually show).
q is set so that the expected recall@10 is exactly 0.70 ("nothing changed": both checkpoints)
or 0.67 ("a true 3-point drop": the second one).

The rule is the daemon's: ``min_drop`` 0.01, ``alpha`` 0.01, 10,000 sign flips with seed 0. The
p-values of all pairs come from one vectorised call of the same function the daemon calls, and a
few pairs are re-decided through ``paired_regression_test`` to prove they are the same decision.

These first scenarios test the paired (query-only) test of two checkpoints; the daemon now decides
with the level test, whose simulation with checkpoint-level variance is at the end of this module
(the model and the full table's generator are in ``bench/regression_simulation.py``).

Two more scenarios follow the daemon further. A previous mining segment of m checkpoints (all of
the same quality, sharing the queries' easiness) with the default ``baseline: best``: the baseline
is the best of them, chosen by ``choose_baseline``, and tested at ``selection_alpha``. And a
20-checkpoint segment after a true drop near the threshold, with the open/resolve hysteresis.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from bench.regression_simulation import Rule, run_cell

from recallwatch.alerting.rules.recall_regression.paired import paired_regression_test as decide
from recallwatch.alerting.rules.recall_regression.paired import permutations_for, selection_alpha
from recallwatch.alerting.rules.recall_regression.segments import CheckpointSummary, choose_baseline
from recallwatch.config import RecallRegressionRule
from recallwatch.stats import paired_randomisation_pvalues

QUERIES = 1_000
PAIRS = 2_000
TAU = 0.2
ALPHA = 0.01
MIN_DROP = 0.01
PERMUTATIONS = 10_000


def simulate(drop: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-query recall@10 of PAIRS (before, after) checkpoint pairs, and the mean churn."""
    rng = np.random.default_rng(seed)
    relevant = rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=QUERIES)
    owner = np.repeat(np.arange(QUERIES), relevant)
    scale = np.sqrt(1 + TAU**2)
    q_before = NormalDist().inv_cdf(0.70) * scale
    q_after = NormalDist().inv_cdf(0.70 - drop) * scale
    shape = (PAIRS, owner.size)
    easiness = rng.standard_normal(shape)
    hit_before = easiness + q_before + TAU * rng.standard_normal(shape) > 0
    hit_after = easiness + q_after + TAU * rng.standard_normal(shape) > 0
    # Per-query recall: relevant documents found / relevant documents, via a segment sum.
    starts = np.concatenate([[0], np.cumsum(relevant)[:-1]])
    before = np.add.reduceat(hit_before, starts, axis=1) / relevant
    after = np.add.reduceat(hit_after, starts, axis=1) / relevant
    churn = float((before != after).mean())
    return before, after, churn


def decisions(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The rule's verdict for every pair (rows), vectorised."""
    p = paired_randomisation_pvalues((after - before).T, permutations=PERMUTATIONS, seed=0)
    drop = before.mean(axis=1) - after.mean(axis=1)
    return (p <= ALPHA) & (drop >= MIN_DROP - 1e-12)


@pytest.fixture(scope="module")
def null_pairs() -> tuple[np.ndarray, np.ndarray, float]:
    return simulate(0.0, seed=11)


@pytest.fixture(scope="module")
def drop_pairs() -> tuple[np.ndarray, np.ndarray, float]:
    return simulate(0.03, seed=12)


def test_false_alarm_rate_when_nothing_changed(
    null_pairs: tuple[np.ndarray, np.ndarray, float],
) -> None:
    before, after, churn = null_pairs
    assert 0.10 < churn < 0.16  # the model is as noisy as documented
    rate = float(decisions(before, after).mean())
    print(
        f"false-alarm rate over {PAIRS} null pairs: {rate:.2%} "
        f"(alpha {ALPHA:.0%}, churn {churn:.1%})"
    )
    assert rate <= ALPHA + 0.005


def test_the_test_alone_holds_its_level(null_pairs: tuple[np.ndarray, np.ndarray, float]) -> None:
    # Without the effect floor the randomisation test alone rejects at about its nominal level.
    before, after, _ = null_pairs
    p = paired_randomisation_pvalues((after - before).T, permutations=2_000, seed=1)
    for alpha in (0.01, 0.05, 0.10):
        assert float((p <= alpha).mean()) <= alpha + 0.015


def test_detects_a_true_three_point_drop(drop_pairs: tuple[np.ndarray, np.ndarray, float]) -> None:
    before, after, churn = drop_pairs
    true_drop = float((before.mean(axis=1) - after.mean(axis=1)).mean())
    assert true_drop == pytest.approx(0.03, abs=0.002)
    rate = float(decisions(before, after).mean())
    print(f"detection rate over {PAIRS} pairs with a 3-point drop: {rate:.2%} (churn {churn:.1%})")
    assert rate >= 0.90


def test_vectorised_decisions_equal_the_daemons_decision(
    drop_pairs: tuple[np.ndarray, np.ndarray, float],
    null_pairs: tuple[np.ndarray, np.ndarray, float],
) -> None:
    for before, after, _ in (drop_pairs, null_pairs):
        vectorised = decisions(before[:8], after[:8])
        one_by_one = [
            decide(
                before[i],
                after[i],
                min_drop=MIN_DROP,
                alpha=ALPHA,
                permutations=PERMUTATIONS,
                seed=0,
            ).regressed
            for i in range(8)
        ]
        assert list(vectorised) == one_by_one


# -- a previous segment of m checkpoints, default policy ---------------------------------------

DEFAULT = RecallRegressionRule(type="recall_regression", name="default", channels=["c"])


def _recall(
    rng: np.random.Generator,
    easiness: np.ndarray,
    quality: float,
    relevant: np.ndarray,
    starts: np.ndarray,
) -> np.ndarray:
    """Per-query recall@10 of one checkpoint per row of ``easiness`` (fresh jitter)."""
    hit = easiness + quality + TAU * rng.standard_normal(easiness.shape) > 0
    return np.add.reduceat(hit, starts, axis=-1) / relevant


def simulate_segment(m: int, drop: float, seed: int) -> np.ndarray:
    """The default rule's verdict for PAIRS (previous segment of m, new checkpoint) draws."""
    rng = np.random.default_rng(seed)
    relevant = rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=QUERIES)
    starts = np.concatenate([[0], np.cumsum(relevant)[:-1]])
    scale = np.sqrt(1 + TAU**2)
    q_before = NormalDist().inv_cdf(0.70) * scale
    q_after = NormalDist().inv_cdf(0.70 - drop) * scale
    easiness = rng.standard_normal((PAIRS, int(relevant.sum())))
    previous = [_recall(rng, easiness, q_before, relevant, starts) for _ in range(m)]
    after = _recall(rng, easiness, q_after, relevant, starts)
    # The daemon's baseline choice, pair by pair: mining "a" for the segment, "b" after it.
    means = np.stack([p.mean(axis=1) for p in previous], axis=1)
    chosen = np.empty(PAIRS, dtype=np.int64)
    candidates = set()
    for i in range(PAIRS):
        history = [CheckpointSummary(j, f"c{j}", j, "a", float(means[i, j])) for j in range(m)]
        current = CheckpointSummary(m, f"c{m}", m, "b", float(after[i].mean()))
        baseline = choose_baseline(
            [*history, current], current, compare_with=DEFAULT.compare_with, policy=DEFAULT.baseline
        )
        assert baseline is not None
        chosen[i] = baseline.checkpoint.id
        candidates.add(baseline.candidates)
    (count,) = candidates
    before = np.stack(previous)[chosen, np.arange(PAIRS)]
    alpha = selection_alpha(DEFAULT.alpha, count)
    permutations = permutations_for(alpha, DEFAULT.permutations)
    p = paired_randomisation_pvalues((after - before).T, permutations=permutations, seed=0)
    observed = before.mean(axis=1) - after.mean(axis=1)
    return (p <= alpha) & (observed >= DEFAULT.min_drop - 1e-12)


@pytest.mark.parametrize("m", [1, 3, 5, 10])
def test_default_baseline_over_a_previous_segment_of_m_checkpoints(m: int) -> None:
    assert (DEFAULT.baseline, DEFAULT.alpha, DEFAULT.min_drop) == ("best", ALPHA, MIN_DROP)
    false_alarms = float(simulate_segment(m, 0.0, seed=100 + m).mean())
    detection = float(simulate_segment(m, 0.03, seed=200 + m).mean())
    print(
        f"m={m}: false alarms {false_alarms:.2%} (target <= {ALPHA + 0.005:.1%}), "
        f"detection of a 3-point drop {detection:.2%} (target >= 90%)"
    )
    assert false_alarms <= ALPHA + 0.005
    assert detection >= 0.90


# -- hysteresis: a true drop near the threshold over a 20-checkpoint segment --------------------

RUNS = 100
SEGMENT = 20


def episodes(drop: float, seed: int) -> tuple[float, float]:
    """Mean firing episodes per segment: without hysteresis, and with the daemon's."""
    rng = np.random.default_rng(seed)
    relevant = rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=QUERIES)
    starts = np.concatenate([[0], np.cumsum(relevant)[:-1]])
    scale = np.sqrt(1 + TAU**2)
    easiness = rng.standard_normal((RUNS, 1, int(relevant.sum())))
    base = _recall(rng, easiness[:, 0], NormalDist().inv_cdf(0.70) * scale, relevant, starts)
    quality = NormalDist().inv_cdf(0.70 - drop) * scale
    after = _recall(rng, np.repeat(easiness, SEGMENT, axis=1), quality, relevant, starts)
    differences = (after - base[:, None, :]).reshape(RUNS * SEGMENT, QUERIES)
    p = paired_randomisation_pvalues(differences.T, permutations=PERMUTATIONS, seed=0)
    p = p.reshape(RUNS, SEGMENT)
    observed = base.mean(axis=1)[:, None] - after.mean(axis=2)
    regressed = (p <= ALPHA) & (observed >= MIN_DROP - 1e-12)
    still = (p <= DEFAULT.resolve_alpha) & (observed >= MIN_DROP / 2 - 1e-12)
    # The same as RegressionVerdict.still_regressed, checkpoint by checkpoint.
    for r, c in ((0, 0), (1, 5), (2, 19)):
        verdict = decide(base[r], after[r, c], min_drop=MIN_DROP, alpha=ALPHA, seed=0)
        assert verdict.still_regressed(DEFAULT.resolve_alpha) == still[r, c]
    out = []
    for keep in (regressed, still):
        firing = np.zeros(RUNS, dtype=bool)
        count = np.zeros(RUNS, dtype=np.int64)
        for i in range(SEGMENT):
            count += ~firing & regressed[:, i]
            firing = np.where(firing, keep[:, i], regressed[:, i])
        out.append(float(count.mean()))
    return out[0], out[1]


@pytest.mark.parametrize("drop", [0.015, 0.02])
def test_hysteresis_keeps_a_near_threshold_drop_to_one_episode(drop: float) -> None:
    without, with_hysteresis = episodes(drop, seed=5)
    print(
        f"{drop * 100:.1f}-point drop: {without:.2f} firing episodes per {SEGMENT} checkpoints "
        f"without hysteresis, {with_hysteresis:.2f} with it"
    )
    assert without > 2.5  # the flapping the hysteresis is for
    assert with_hysteresis <= 1.5


# -- checkpoint-level variance: the level test per mining change (issue 15) --------------------

#: Earlier runs of the same held-out set in the issue's scenario (2 + 2 checkpoints each).
HISTORY_RUNS = 10

#: The corners of the grid in docs/alerting.md (all of it: bench/regression_simulation.py).
#: 2,000 runs per cell, 20 checkpoints before the mining change, 6 after it, and the history of
#: HISTORY_RUNS earlier runs (on by default: ``checkpoint_sd_history``).
CELLS = [(0.0, 0.20), (0.007, 0.10), (0.007, 0.20), (0.01, 0.10), (0.01, 0.20)]


@pytest.mark.parametrize(("checkpoint_sd", "churn"), CELLS)
def test_false_alarms_per_mining_change_and_detection_with_checkpoint_variance(
    checkpoint_sd: float, churn: float
) -> None:
    rule = Rule()
    default = RecallRegressionRule(type="recall_regression", name="d", channels=["c"])
    assert (rule.alpha, rule.min_drop, rule.resolve_alpha) == (
        default.alpha,
        default.min_drop,
        default.resolve_alpha,
    )
    assert (rule.checkpoint_sd, rule.checkpoint_sd_weight) == (
        default.checkpoint_sd,
        default.checkpoint_sd_weight,
    )
    cell = run_cell(checkpoint_sd, churn, draws=2_000, pre=20, post=6, history_runs=HISTORY_RUNS)
    print(
        f"checkpoint SD {checkpoint_sd * 100:.1f} points, churn {cell.measured_churn:.1%}: "
        f"false alarms per mining change {cell.false_alarms:.2%}, detection of a 3-point drop "
        f"within 2 checkpoints {cell.detection:.2%}"
    )
    assert abs(cell.measured_churn - churn) < 0.01  # the model is as noisy as documented
    assert cell.false_alarms <= rule.alpha + 0.005
    # Issue 25: without climbs of earlier runs (their segments of 2 have none) the run's own
    # slope selects the line or the mean; flat runs keep the mean's power (90.5% before).
    if checkpoint_sd <= 0.007:
        assert cell.detection >= 0.90


# -- few pre-change checkpoints: Satterthwaite's degrees of freedom, and earlier runs ----------


@pytest.mark.parametrize("pre", [5, 10])
def test_few_degrees_of_freedom_and_a_large_checkpoint_sd_hold_the_false_alarm_target(
    pre: int,
) -> None:
    # The worst cell of the grid (checkpoint SD 1 point, 20% churn), no history: with the
    # nominal degrees of freedom (prior + J - 1) this was 1.6% at 5 and 10 pre-change checkpoints.
    cell = run_cell(0.01, 0.20, draws=2_000, pre=pre, post=6)
    print(f"pre {pre}, SD 1 point, 20% churn: false alarms {cell.false_alarms:.2%}")
    assert cell.false_alarms <= Rule().alpha + 0.005


#: The issue's scenario: 2 checkpoints before the change, history of HISTORY_RUNS earlier runs:
#: (checkpoint SD, churn, whether detection >= 90% is reachable there at all; docs/alerting.md).
ISSUE_CELLS = [(0.0, 0.10, True), (0.0025, 0.15, True), (0.007, 0.20, False), (0.01, 0.15, False)]


@pytest.mark.parametrize(("checkpoint_sd", "churn", "reachable"), ISSUE_CELLS)
def test_two_checkpoints_before_the_change_with_a_history_of_earlier_runs(
    checkpoint_sd: float, churn: float, reachable: bool
) -> None:
    cell = run_cell(checkpoint_sd, churn, draws=2_000, pre=2, post=6, history_runs=HISTORY_RUNS)
    print(
        f"pre 2, history of {HISTORY_RUNS} runs, SD {checkpoint_sd * 100:.2f} points, churn "
        f"{cell.measured_churn:.1%}: false alarms {cell.false_alarms:.2%}, detection "
        f"{cell.detection:.2%}"
    )
    assert cell.false_alarms <= Rule().alpha + 0.005
    if reachable:
        assert cell.detection >= 0.90


def test_two_checkpoints_before_the_change_are_a_power_limit_even_with_the_sd_known() -> None:
    # Where the issue's scenario misses 90% detection with history, knowing the checkpoint SD
    # exactly (what an infinite history would give) misses it too: the pre level is the mean of
    # two noisy checkpoints, and no estimate of the variance makes it more precise.
    known = run_cell(0.007, 0.20, draws=2_000, pre=2, post=6, known_sd=True)
    history = run_cell(0.007, 0.20, draws=2_000, pre=2, post=6, history_runs=HISTORY_RUNS)
    print(
        f"pre 2, SD 0.7 point, 20% churn: detection {known.detection:.2%} with the SD known, "
        f"{history.detection:.2%} with a history of {HISTORY_RUNS} runs"
    )
    assert history.detection < known.detection < 0.80
    assert known.false_alarms <= Rule().alpha + 0.005


# -- runs still climbing before the mining change (issue 25) -----------------------------------

#: Runs per cell and scenario, and earlier runs in the history (each 6 + 2 checkpoints, climbing
#: like the run: their climbs are the forecast's prior): seconds per cell on 2 shared cores (the
#: full grid with 1,000 runs: bench/regression_simulation.py --climb, docs/alerting.md).
CLIMB_DRAWS = 300
CLIMB_HISTORY = 10


def _false_alarm_bound(draws: int, alpha: float = Rule().alpha) -> float:
    """alpha + 0.5 point, plus a one-sided 99% binomial allowance for ``draws`` runs."""
    return alpha + 0.005 + 2.33 * (alpha * (1 - alpha) / draws) ** 0.5


def _ceiling_bound(cell_detection: float, ceiling: float, draws: int) -> float:
    """90% of the ceiling, less a one-sided 99% binomial allowance for ``draws`` runs."""
    return 0.90 * ceiling - 2.33 * (cell_detection * (1 - cell_detection) / draws) ** 0.5


#: (climb, checkpoint SD, churn, detection above today's rule there; the full grid is in
#: docs/alerting.md).
CLIMB_CELLS = [
    ("0.5", 0.0, 0.10, True),
    ("0.25", 0.005, 0.20, True),
    ("sat", 0.005, 0.15, True),
    ("0.5", 0.01, 0.20, True),
    ("flat", 0.01, 0.10, False),
]


@pytest.mark.parametrize(("climb", "checkpoint_sd", "churn", "gains"), CLIMB_CELLS)
def test_a_run_climbing_before_the_change_is_judged_against_its_climbs_end(
    climb: str, checkpoint_sd: float, churn: float, gains: bool
) -> None:
    # 6 checkpoints before the change (the issue's shape); controls plateau at the last
    # pre-change level, damaged runs drop 3 points from it. Today's rule (the segment's mean)
    # and the known-trend ceiling (the climb taken out exactly) decide the same draws.
    cell = run_cell(
        checkpoint_sd,
        churn,
        draws=CLIMB_DRAWS,
        pre=6,
        post=6,
        climb=climb,
        compare=True,
        history_runs=CLIMB_HISTORY,
        history_shape=(6, 2),
    )
    print(
        f"climb {climb}, SD {checkpoint_sd * 100:.2f}, churn {churn:.0%}: false alarms "
        f"{cell.false_alarms:.2%} (today {cell.today_false_alarms:.2%}), detection "
        f"{cell.detection:.1%} (today {cell.today_detection:.1%}, ceiling "
        f"{cell.ceiling_detection:.1%})"
    )
    assert cell.false_alarms <= _false_alarm_bound(CLIMB_DRAWS)
    if gains:
        assert cell.detection > cell.today_detection + 0.05
    assert cell.detection >= _ceiling_bound(cell.detection, cell.ceiling_detection, CLIMB_DRAWS)
    if climb == "flat":
        # A flat run among flat ones mostly reads flat (trend.FLAT_Z) and is decided by today's
        # level test: detection within sampling of today's (1,000 runs: 3.6 points below it,
        # where the forecast everywhere was 8.9 below).
        assert cell.detection >= cell.today_detection - 0.06


@pytest.mark.parametrize(("climb", "checkpoint_sd", "churn"), [("sat", 0.005, 0.20)])
def test_a_long_climb_that_flattens_is_forecast_from_its_end(
    climb: str, checkpoint_sd: float, churn: float
) -> None:
    # 20 checkpoints before the change on a curve that flattens (3 points, most of it early),
    # earlier runs alike (20 + 2): a line's end would overshoot the level reached (+0.47 point;
    # 1,000 runs: 1.5-2.0% false alarms at SD 0-0.5 point), the curve's end climb
    # (trend.CURVE_Z) keeps the target (docs/alerting.md).
    cell = run_cell(
        checkpoint_sd,
        churn,
        draws=CLIMB_DRAWS,
        pre=20,
        post=6,
        climb=climb,
        compare=True,
        history_runs=CLIMB_HISTORY,
        history_shape=(20, 2),
    )
    print(
        f"20 checkpoints, climb {climb}, SD {checkpoint_sd * 100:.2f}, churn {churn:.0%}: false "
        f"alarms {cell.false_alarms:.2%}, detection {cell.detection:.1%} (ceiling "
        f"{cell.ceiling_detection:.1%})"
    )
    assert cell.false_alarms <= _false_alarm_bound(CLIMB_DRAWS)
    assert cell.detection >= _ceiling_bound(cell.detection, cell.ceiling_detection, CLIMB_DRAWS)


@pytest.mark.parametrize(("checkpoint_sd", "churn"), [(0.0, 0.10), (0.007, 0.20), (0.01, 0.15)])
def test_two_checkpoints_before_the_change_decide_exactly_as_today(
    checkpoint_sd: float, churn: float
) -> None:
    # Fewer than MIN_TREND_CHECKPOINTS before the change: the mean, at the whole alpha.
    cell = run_cell(checkpoint_sd, churn, draws=CLIMB_DRAWS, pre=2, post=2, compare=True)
    assert (cell.false_alarms, cell.detection) == (
        cell.today_false_alarms,
        cell.today_detection,
    )


@pytest.mark.parametrize(("checkpoint_sd", "churn"), [(0.01, 0.20)])
def test_climbs_unlike_the_earlier_runs_keep_the_false_alarm_target(
    checkpoint_sd: float, churn: float
) -> None:
    # Earlier runs whose climbs differ (SD 0.5 point per checkpoint around the cell's 0.25):
    # the prior widens (tau) and the run's own slope weighs more; false alarms hold.
    cell = run_cell(
        checkpoint_sd,
        churn,
        draws=CLIMB_DRAWS,
        pre=6,
        post=6,
        climb="0.25",
        history_runs=CLIMB_HISTORY,
        history_shape=(6, 2),
        history_climb_sd=0.5,
    )
    print(
        f"climbs unlike, SD {checkpoint_sd * 100:.2f}, churn {churn:.0%}: false alarms "
        f"{cell.false_alarms:.2%}, detection {cell.detection:.1%}"
    )
    assert cell.false_alarms <= _false_alarm_bound(CLIMB_DRAWS)


#: Runs unlike their predecessors (the forecast's guard, docs/alerting.md): (the run's climb, the
#: earlier runs' climb, checkpoint SD, churn).
UNLIKE_CELLS = [("flat", "0.5", 0.0, 0.10), ("0.5", "flat", 0.005, 0.10)]


@pytest.mark.parametrize(("climb", "history_climb", "checkpoint_sd", "churn"), UNLIKE_CELLS)
def test_a_run_unlike_its_predecessors_is_weighed_on_its_own_slope(
    climb: str, history_climb: str, checkpoint_sd: float, churn: float
) -> None:
    # A flat run among earlier runs that climbed 0.5 point per checkpoint borrows their climb
    # without the guard (a forecast 1.25 points above where it is: a third of the controls
    # alarm); a run climbing 0.5 among flat ones borrows their 0 (the mean's power). The guard
    # widens the prior to the run's own deviation from it; the same draws decide both ways.
    args: dict[str, Any] = {
        "draws": CLIMB_DRAWS,
        "pre": 6,
        "post": 6,
        "climb": climb,
        "history_runs": CLIMB_HISTORY,
        "history_shape": (6, 2),
        "history_climb": history_climb,
    }
    guarded = run_cell(checkpoint_sd, churn, **args)
    unguarded = run_cell(checkpoint_sd, churn, guard=False, **args)
    print(
        f"climb {climb} among {history_climb}, SD {checkpoint_sd * 100:.2f}, churn {churn:.0%}: "
        f"false alarms {guarded.false_alarms:.2%} (without the guard "
        f"{unguarded.false_alarms:.2%}), detection {guarded.detection:.1%} (without "
        f"{unguarded.detection:.1%})"
    )
    assert guarded.false_alarms <= _false_alarm_bound(CLIMB_DRAWS)
    if climb == "flat":
        assert unguarded.false_alarms > 0.10  # the risk the guard is for
    else:
        assert guarded.detection > unguarded.detection + 0.05
