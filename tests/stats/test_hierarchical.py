"""The two-level test: checkpoint variance moments, moderation, the level test, repeated looks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recallwatch.stats.hierarchical import (
    EARLY_LOOKS,
    Moments,
    VarianceHistory,
    checkpoint_variance,
    level_test,
    level_test_arrays,
    moderated_variance,
    pooled_moments,
    segment_moments,
    sequential_alpha,
    sequential_levels,
)


def two_level(
    rng: np.random.Generator, draws: int, checkpoints: int, queries: int, sd_c: float, sd_e: float
) -> np.ndarray:
    """y[d, j, q] = mu[d, q] + delta[d, j] + e[d, j, q]: the model the moments assume."""
    mu = rng.standard_normal((draws, 1, queries))
    delta = sd_c * rng.standard_normal((draws, checkpoints, 1))
    return mu + delta + sd_e * rng.standard_normal((draws, checkpoints, queries))


@pytest.mark.parametrize("sd_c", [0.0, 0.01, 0.03])
def test_segment_moments_estimate_the_checkpoint_variance_without_bias(sd_c: float) -> None:
    rng = np.random.default_rng(1)
    y = two_level(rng, 4_000, 4, 300, sd_c, 0.3)
    for detrend, expected_df in ((False, 3), (True, 2)):
        excess, df, churn = segment_moments(y, detrend=detrend)
        assert df == expected_df and excess.shape == churn.shape == (4_000,)
        # The per-checkpoint churn alone would give a spread of 0.3 / sqrt(300) = 1.7 points.
        assert float(excess.mean()) / df == pytest.approx(sd_c**2, abs=2e-5)
        assert float(churn.mean()) == pytest.approx(0.3**2 / 300, rel=0.01)
    # A climb of 1 point per checkpoint is no checkpoint noise once the segment is detrended.
    climbing = y + 0.01 * np.arange(4)[None, :, None]
    excess, df, _ = segment_moments(climbing)
    assert float(excess.mean()) / df == pytest.approx(sd_c**2, abs=2e-5)
    excess, df, _ = segment_moments(climbing, detrend=False)
    assert float(excess.mean()) / df > sd_c**2 + 1e-5


def test_a_single_checkpoint_carries_no_variance_information() -> None:
    excess, df, churn = segment_moments(np.ones((1, 50)))
    assert (float(excess), df, float(churn)) == (0.0, 0, 0.0)
    assert Moments.of(np.ones((1, 50))) == Moments() and Moments().sd is None
    with pytest.raises(ValueError, match="checkpoints, queries"):
        segment_moments(np.ones(5))


def test_the_prior_is_moderated_by_the_runs_own_checkpoints() -> None:
    # No groups: the prior alone, with its weight as degrees of freedom.
    v = checkpoint_variance([], prior_sd=0.01, prior_df=4.0)
    assert (v.sd, v.data_sd, v.data_df, v.df, v.groups) == (0.01, None, 0, 4.0, 0)
    assert "no same-mining checkpoint pairs" in v.describe()
    # Two groups whose checkpoints differ by 2 points with no churn: sigma_c^2 = 2e-4 each.
    flat = np.zeros((2, 100))
    flat[1] += 0.02
    v = checkpoint_variance([flat, flat, np.zeros((1, 100))], prior_sd=0.01, prior_df=2.0)
    assert (v.data_df, v.groups) == (2, 2)
    assert v.data_sd == pytest.approx(math.sqrt(2e-4))
    assert v.sd == pytest.approx(math.sqrt((2 * 1e-4 + 2 * 2e-4) / 4))
    # No churn: the spread of checkpoint means measures sigma_c^2 with all its degrees of freedom.
    assert v.as_dict()["df"] == pytest.approx(4.0) and "2 degrees of freedom" in v.describe()
    var, df = moderated_variance(np.array([-1.0]), np.array([1]), prior_sd=0.01, prior_df=1.0)
    assert var[0] == 0.0 and df[0] == 2.0  # never negative
    with pytest.raises(ValueError):
        checkpoint_variance([], prior_sd=0.01, prior_df=0.0)


def test_moments_add_up_over_groups_and_runs() -> None:
    rng = np.random.default_rng(5)
    groups = [two_level(rng, 1, j, 200, 0.01, 0.3)[0] for j in (2, 3, 4)]
    parts = [Moments.of(g) for g in groups]
    total = pooled_moments(groups)
    assert (total.df, total.groups) == (1 + 2 + 2, 3)  # the group of 4 is detrended
    assert total.excess == pytest.approx(sum(p.excess for p in parts))
    assert total.churn == pytest.approx(sum(p.churn for p in parts))
    assert total.churn_sq == pytest.approx(sum(p.churn**2 / p.df for p in parts))
    assert parts[0] + parts[1] + parts[2] == total
    assert total.sd == pytest.approx(math.sqrt(max(0.0, total.excess / 5)))


def test_satterthwaite_degrees_of_freedom_count_the_churn() -> None:
    # No churn: the nominal prior_df + df. Churn as large as the checkpoint variance: fewer.
    var, nu = moderated_variance(8e-4, 8, prior_sd=0.01, prior_df=4.0)
    assert float(var) == pytest.approx(1e-4) and float(nu) == pytest.approx(12.0)
    r = 1e-4  # the churn part of one checkpoint mean's variance, per group of 8 (df 8)
    var, nu = moderated_variance(
        8e-4, 8, prior_sd=0.01, prior_df=4.0, churn=8 * r, churn_sq=8 * r**2
    )
    # nu = D^2 v^2 / (prior_df v^2 + df (v + R)^2) = 144 / (4 + 32)
    assert float(nu) == pytest.approx(144 / 36)
    # A zero variance adds nothing to the test: its degrees of freedom are the nominal ones.
    var, nu = moderated_variance(-1.0, 2, prior_sd=0.0, prior_df=1.0, churn=2e-4, churn_sq=2e-8)
    assert (float(var), float(nu)) == (0.0, 3.0)


def test_earlier_runs_join_the_estimate_and_the_evidence_says_so() -> None:
    flat = np.zeros((2, 100))
    flat[1] += 0.02  # 2e-4 of checkpoint variance, no churn
    past = VarianceHistory(pooled_moments([flat] * 9), runs=9)
    v = checkpoint_variance([], prior_sd=0.01, prior_df=4.0, history=past)
    assert (v.data_df, v.history_df, v.history_runs, v.history_groups) == (0, 9, 9, 9)
    assert v.history_sd == pytest.approx(math.sqrt(2e-4))
    assert v.sd == pytest.approx(math.sqrt((4 * 1e-4 + 9 * 2e-4) / 13))
    assert v.nominal_df == v.df == pytest.approx(13.0)
    assert "pooled from 9 earlier runs of this held-out set, 9 degrees of freedom" in v.describe()
    d = v.as_dict()
    assert (d["history_df"], d["history_runs"], d["nominal_df"]) == (9, 9, 13.0)
    # No history: nothing said about it.
    assert "earlier" not in checkpoint_variance([], prior_sd=0.01, prior_df=4.0).describe()


def test_few_checkpoints_with_large_churn_hold_the_level() -> None:
    # Five checkpoints per side, checkpoint SD 1 point, churn adding as much again to each
    # checkpoint mean, the prior right: the nominal degrees of freedom (prior + J - 1) make the
    # t reference liberal; Satterthwaite's hold alpha.
    rng = np.random.default_rng(6)
    draws, j, queries, sd_c, sd_e = 20_000, 5, 200, 0.01, 0.01 * math.sqrt(200)
    both = two_level(rng, draws, 2 * j, queries, sd_c, sd_e)  # one set of query effects
    pre, post = both[:, :j], both[:, j:]
    excess, df, churn = segment_moments(pre)
    rates = {}
    variants: dict[str, tuple[np.ndarray | float, np.ndarray | float]] = {
        "nominal": (0.0, 0.0),
        "satterthwaite": (df * churn, df * churn**2),
    }
    for name, (c1, c2) in variants.items():
        var, nu = moderated_variance(excess, df, prior_sd=sd_c, prior_df=4.0, churn=c1, churn_sq=c2)
        p = level_test_arrays(pre, post, var, nu)["p"]
        rates[name] = float((p <= 0.01).mean())
    print(f"rejection at alpha 1%: {rates}")
    assert rates["satterthwaite"] <= 0.011 < rates["nominal"]


@pytest.mark.parametrize("sd_c", [0.0, 0.01])
def test_the_level_test_holds_its_level_with_both_components(sd_c: float) -> None:
    rng = np.random.default_rng(2)
    pre = two_level(rng, 6_000, 4, 400, sd_c, 0.3)
    # The post checkpoints share the queries' effects (mu) of the pre ones, as real ones do.
    mu = pre.mean(axis=1, keepdims=True)
    post = (
        mu + sd_c * rng.standard_normal((6_000, 2, 1)) + 0.3 * rng.standard_normal((6_000, 2, 400))
    )
    excess, df, churn = segment_moments(pre)
    var, nu = moderated_variance(
        excess, df, prior_sd=max(sd_c, 1e-4), prior_df=3.0, churn=df * churn, churn_sq=df * churn**2
    )
    p = level_test_arrays(pre, post, var, nu)["p"]
    for alpha in (0.01, 0.05):
        assert float((p <= alpha).mean()) <= alpha * 1.35 + 0.002


def test_the_query_only_part_matches_a_paired_t_test() -> None:
    rng = np.random.default_rng(3)
    before, after = rng.random(500), rng.random(500) - 0.03
    v = checkpoint_variance([], prior_sd=0.0, prior_df=1.0)
    t = level_test(before, after, v)
    d = after - before
    assert t.difference == pytest.approx(d.mean())
    assert t.se == pytest.approx(d.std(ddof=1) / math.sqrt(500)) and t.se_checkpoints == 0.0
    assert t.df == pytest.approx(499)
    import scipy.stats

    assert t.p_value == pytest.approx(scipy.stats.ttest_rel(after, before).pvalue / 2, rel=1e-6)
    assert t.as_dict()["checkpoint_variance"]["prior_df"] == 1.0


def test_no_noise_at_all_gives_a_certain_answer() -> None:
    v = checkpoint_variance([], prior_sd=0.0, prior_df=1.0)
    same = np.ones((2, 10))
    assert level_test(same, same[:1], v).p_value == 1.0
    assert level_test(same, same[:1] - 0.1, v).p_value == 0.0


@pytest.mark.parametrize("pre", [1, 3, 10])
def test_repeated_looks_keep_alpha_per_change(pre: int) -> None:
    # An independent draw of the process the levels were computed for: any look rejecting.
    alpha = 0.01
    early, late = sequential_levels(alpha, pre)
    assert late < early < alpha
    assert sequential_alpha(alpha, pre, EARLY_LOOKS) == (early, early)
    assert sequential_alpha(alpha, pre, EARLY_LOOKS + 1) == (late, 0.0)
    rng = np.random.default_rng(99)
    looks = 64
    n = np.arange(1, looks + 1)
    x = rng.standard_normal((200_000, looks))
    b = rng.standard_normal((200_000, 1)) / math.sqrt(pre)
    cumulative = (np.cumsum(x, axis=1) / n - b) / np.sqrt(1 / n + 1 / pre)
    latest = (x - b) / math.sqrt(1 + 1 / pre)
    z_early = -math.sqrt(2) * _erfcinv(2 * early)
    z_late = -math.sqrt(2) * _erfcinv(2 * late)
    rejected = (
        (cumulative[:, :EARLY_LOOKS] < z_early).any(axis=1)
        | (latest[:, :EARLY_LOOKS] < z_early).any(axis=1)
        | (cumulative[:, EARLY_LOOKS:] < z_late).any(axis=1)
    )
    assert float(rejected.mean()) == pytest.approx(alpha, abs=0.0015)


def _erfcinv(y: float) -> float:
    from statistics import NormalDist

    return -NormalDist().inv_cdf(y / 2) / math.sqrt(2)
