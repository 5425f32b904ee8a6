"""A judge against people: agreement equals a hand count; the three rates side by side."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.estimate import FN, MISSING, NOT_FN, UNSURE
from recallwatch.mining.people import judge_agreement, people_and_judge
from recallwatch.mining.sampling import draw_sample

R, N, U, M = FN, NOT_FN, UNSURE, MISSING


def test_agreement_equals_a_hand_count() -> None:
    # pair:    1  2  3  4  5  6  7  8  9 10 11 12
    people = [R, R, R, N, N, N, N, N, U, R, M, N]
    judge = [R, R, N, R, N, N, N, U, R, M, R, N]
    a = judge_agreement(np.array(judge, np.int8), np.array(people, np.int8), name="model:j")
    # Hand count over pairs 1-8 and 12 (both relevant / not relevant):
    # people R & judge R: 1, 2 -> 2; people R & judge N: 3 -> 1;
    # people N & judge R: 4 -> 1;    people N & judge N: 5, 6, 7, 12 -> 4. Pair 8: judge unsure.
    assert (a.true_positive, a.false_negative, a.false_positive, a.true_negative) == (2, 1, 1, 4)
    assert a.pairs == 8
    assert a.judge_unsure == 2  # pairs 8 (unsure) and 10 (no judgement), people labelled both
    assert a.people_unsure == 1  # pair 9
    assert a.sensitivity == pytest.approx(2 / 3)
    assert a.specificity == pytest.approx(4 / 5)
    assert a.accuracy == pytest.approx(6 / 8)
    # kappa by hand: p_o = 6/8; judge R 3/8, people R 3/8; p_e = 9/64 + 25/64 = 34/64.
    assert a.kappa == pytest.approx((6 / 8 - 34 / 64) / (1 - 34 / 64))
    d = a.as_dict()
    assert d["confusion"]["people_relevant"] == {"judge_relevant": 2, "judge_not_relevant": 1}


def test_agreement_without_shared_pairs_has_no_rates() -> None:
    a = judge_agreement(np.array([R, N], np.int8), np.array([M, M], np.int8), name="j")
    assert a.pairs == 0 and a.kappa is None and a.sensitivity is None


def _sample(n_rows: int = 4000, size: int = 400, seed: int = 3) -> tuple:
    rng = np.random.default_rng(seed)
    bucket = rng.integers(0, 3, n_rows)
    truth = rng.random(n_rows) < np.array([0.3, 0.15, 0.05])[bucket]
    sample = draw_sample(bucket, None, size, rng, num_buckets=3)
    return rng, sample, truth[sample.rows]


def test_people_and_judge_uses_ppi_and_it_is_narrower() -> None:
    rng, sample, truth = _sample()
    judge = np.where(rng.random(truth.size) < 0.9, truth, ~truth)
    judge_out = np.where(judge, FN, NOT_FN).astype(np.int8)
    people = np.full(truth.size, MISSING, np.int8)
    people[:80] = np.where(truth[:80], FN, NOT_FN)
    r = people_and_judge(sample, judge_out, people, ["1", "2-3", ">3"], judge_name="model:j")
    assert r.used == "ppi" and r.ppi is not None and r.people_only is not None
    alone = r.people_interval
    assert alone is not None and alone == r.ppi_people_only
    assert r.ppi.upper - r.ppi.lower <= alone.upper - alone.lower
    assert r.headline == r.ppi
    assert [b.label for b in r.ppi_buckets] == ["1", "2-3", ">3"]
    assert all(b.result is not None for b in r.ppi_buckets)
    assert r.agreement[0].pairs == 80
    d = r.as_dict()
    assert set(d["estimates"]) == {"ppi", "people", "judge"} and d["used"] == "ppi"


def test_without_people_the_judge_is_used() -> None:
    _, sample, truth = _sample()
    judge_out = np.where(truth, FN, NOT_FN).astype(np.int8)
    people = np.full(truth.size, MISSING, np.int8)
    r = people_and_judge(sample, judge_out, people, ["1", "2-3", ">3"], judge_name="j")
    assert r.used == "judge" and r.headline == r.judge_only.best
