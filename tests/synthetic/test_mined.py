"""Simulated mined sets (``synthetic/mined.py``): planted false negatives, on disk as real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recallwatch.heldout.beir import read_qrels
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.sampling import RankBuckets
from recallwatch.synthetic.mined import simulate_mined_set


def test_planted_rates_follow_the_buckets() -> None:
    rates = (0.5, 0.2, 0.1, 0.05, 0.0, 0.0)
    sim = simulate_mined_set(
        num_queries=400, negatives_per_query=10, num_docs=3000, bucket_rates=rates, seed=3
    )
    ranks = np.array([n.rank for q in sim.mined.queries for n in q.negatives])
    bucket = RankBuckets().assign(ranks)
    assert sim.is_false_negative.shape == ranks.shape
    for b, rate in enumerate(rates[:3]):
        observed = sim.is_false_negative[bucket == b].mean()
        assert abs(observed - rate) < 0.08
    assert sim.true_rate == float(sim.is_false_negative.mean())
    flagged = [n.doc_id in sim.relevant[q.query_id] for q in sim.mined.queries for n in q.negatives]
    assert np.array_equal(np.array(flagged), sim.is_false_negative)


def test_write_round_trips_through_the_real_readers(tmp_path: Path) -> None:
    sim = simulate_mined_set(num_queries=30, negatives_per_query=5, num_docs=400, seed=1)
    corpus_dir, mined_path, qrels_path = sim.write(tmp_path)
    corpus = load_corpus(corpus_dir)
    assert len(corpus) == 400 and set(corpus.query_texts) == {q.query_id for q in sim.mined.queries}
    mined = read_mined(mined_path, corpus)
    assert [q.query_id for q in mined.queries] == [q.query_id for q in sim.mined.queries]
    assert sum(len(q.negatives) for q in mined.queries) == 30 * 5
    qrels = read_qrels(qrels_path)
    for q in sim.mined.queries:
        relevant = {d for d, (score, _) in qrels[q.query_id].items() if score > 0}
        assert sim.relevant[q.query_id] <= relevant
