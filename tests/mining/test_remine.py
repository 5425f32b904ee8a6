"""``remine``: which candidates a re-mining picks, the prescription, and its error rate."""

from __future__ import annotations

import numpy as np
import pytest

from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.remine import RemineSpec, prescribe, selected


def _pool(
    ranks_per_query: list[list[int]], score: list[list[float]] | None = None
) -> NegativeTable:
    qi = np.repeat(np.arange(len(ranks_per_query)), [len(r) for r in ranks_per_query])
    rank = np.concatenate([np.asarray(r, dtype=np.int64) for r in ranks_per_query])
    sc = (
        np.concatenate([np.asarray(s, dtype=np.float64) for s in score])
        if score is not None
        else 1.0 - rank / 100.0
    )
    return NegativeTable(
        qi.astype(np.int64),
        np.concatenate([np.arange(len(r)) for r in ranks_per_query]).astype(np.int64),
        rank,
        sc,
        np.full(rank.shape, 1.0),
    )


def test_selected_is_the_lowest_ranks_the_filter_keeps_per_query() -> None:
    # Rows out of rank order; query 1 is short of candidates.
    pool = _pool([[3, 1, 2, 5, 4], [2, 1]])
    picked = selected(pool, RemineSpec(num_negatives=2, range_min=1))
    assert pool.rank[:5][picked[:5]].tolist() == [3, 2]
    assert pool.rank[5:][picked[5:]].tolist() == [2]
    # A relative margin drops the candidates within it of the positive (score 1.0).
    scored = _pool([[1, 2, 3, 4]], [[0.99, 0.97, 0.9, 0.8]])
    with_margin = selected(scored, RemineSpec(num_negatives=2, relative_margin=0.05))
    assert scored.rank[with_margin].tolist() == [3, 4]
    # range_max bounds the window.
    assert selected(scored, RemineSpec(2, range_min=3, range_max=3)).sum() == 0


def test_census_prescribes_the_least_change_that_meets_the_target() -> None:
    pool = _pool([list(range(1, 31)) for _ in range(200)])
    fn = (pool.rank <= 2) & (pool.query_index % 2 == 0)  # half the queries: ranks 1-2 are FN
    rows = np.arange(len(pool))
    got = prescribe(pool, rows, fn[rows], num_negatives=5, target=0.05)
    assert got.best is not None and got.best.exact
    assert got.best.spec.range_min == 2 and got.best.projected.estimate == 0.0
    assert got.best.negatives == 1000 and got.pool_judged == got.pool_size
    # Every option offered meets the target (range_min=1 alone keeps 100 FN of 1,000: not).
    assert all(fn[selected(pool, o.spec)].mean() <= 0.05 for o in got.options)
    assert not any(o.spec.range_min == 1 and o.spec.relative_margin is None for o in got.options)
    assert "range_min=2" in got.best.sentence() and "num_negatives=5" in got.best.sentence()


def test_nothing_prescribed_when_every_window_is_over_target() -> None:
    pool = _pool([list(range(1, 11)) for _ in range(50)])
    rows = np.arange(len(pool))
    got = prescribe(pool, rows, np.ones(len(pool), dtype=bool), num_negatives=1)
    assert got.best is None and got.options == [] and got.notes


def test_prescribing_an_over_target_remining_is_rare() -> None:
    """Sampled (not census) labels: the chance of prescribing a re-mining whose realised rate is
    over the target stays under 1 - confidence (Bonferroni over the candidates)."""
    rng = np.random.default_rng(7)
    pool = _pool([list(range(1, 41)) for _ in range(300)])
    pool = NegativeTable(  # no scores: the range_min re-minings only (fast)
        pool.query_index, pool.negative_index, pool.rank, pool.score * np.nan, pool.positive_score
    )
    # True FN rates by rank: range_min=1 picks ranks 2-6 at 8.6%, range_min=2 ranks 3-7 at
    # 4.8% (just under the target), range_min=3 ranks 4-8 at 1%.
    p = np.select([pool.rank <= 1, pool.rank <= 3, pool.rank <= 10], [0.3, 0.2, 0.01], 0.005)
    seeds, wrong, made = 200, 0, 0
    for _ in range(seeds):
        truth = rng.random(len(pool)) < p
        rows = np.sort(rng.choice(len(pool), size=4000, replace=False))
        got = prescribe(pool, rows, truth[rows], num_negatives=5, target=0.05)
        if got.best is None:
            continue
        made += 1
        true_rate = truth[selected(pool, got.best.spec)].mean()
        wrong += bool(true_rate > 0.05)
    assert made > seeds // 2  # it does prescribe
    assert wrong / seeds <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / seeds)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="num_negatives"):
        RemineSpec(0)
    with pytest.raises(ValueError, match="range_min"):
        RemineSpec(1, range_min=-1)
    assert RemineSpec(5, 10, 0.05, 40).kwargs() == {
        "range_min": 10,
        "num_negatives": 5,
        "relative_margin": 0.05,
        "range_max": 40,
        "sampling_strategy": "top",
    }


def test_the_alert_sentence_names_the_remining() -> None:
    from recallwatch.mining.audit_output import recommendation_text
    from recallwatch.mining.recommend import Recommendation

    pool = _pool([list(range(1, 31)) for _ in range(40)])
    fn = pool.rank <= 1
    rows = np.arange(len(pool))
    pres = prescribe(pool, rows, fn, num_negatives=1)
    none = Recommendation(0.05, "upper", True, None, [], ["no candidate filter ..."])
    text = recommendation_text(Recommendation(**{**none.__dict__, "remining": pres}).as_dict())
    assert text is not None and text.startswith("no filter of the mined set meets the target; ")
    assert "re-mine with mine(..., range_min=1, num_negatives=1" in text
    assert recommendation_text(none.as_dict()) == "no candidate filter ..."


def test_a_filter_dropping_most_negatives_comes_after_the_remining() -> None:
    from recallwatch.mining.audit_output import recommendation_text

    option = {"describe": "relative_margin=0.06", "dropped_fraction": 0.97, "projected": {}}
    rec = {"needed": True, "target": 0.05, "best": option, "options": [option]}
    remine = {"sentence": "re-mine with mine(..., range_min=3, num_negatives=1)"}
    text = recommendation_text({**rec, "remining": remine})
    assert text is not None and text.startswith("re-mine with mine(..., range_min=3")
    assert "a filter would drop 97%" in text
    cheap = {**option, "dropped_fraction": 0.1}
    text = recommendation_text({**rec, "best": cheap, "options": [cheap], "remining": remine})
    assert text is not None and text.startswith("set relative_margin=0.06")
    assert text.endswith("; or re-mine with mine(..., range_min=3, num_negatives=1)")
