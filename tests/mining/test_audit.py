"""The audit of a mined set (``run_audit``): the sample size meets the half-width asked for."""

from __future__ import annotations

import pytest

from recallwatch.mining.audit import AuditConfig, run_audit
from recallwatch.mining.oracles import (
    QrelsOracle,
)
from recallwatch.synthetic.mined import simulate_mined_set


@pytest.mark.parametrize(
    ("audited_queries", "half_width", "seed"),
    [
        (20, 0.025, 0),  # 600 judgeable of 12,000: the correction matters most
        (20, 0.05, 1),
        (60, 0.025, 2),  # 1,800 judgeable
        (400, 0.025, 3),  # everything audited: unchanged
    ],
)
def test_half_width_is_met_when_the_oracle_judges_part_of_the_set(
    audited_queries: int, half_width: float, seed: int
) -> None:
    # Every bucket at a 50% rate: the worst case the default --assumed-rate sizes for.
    sim = simulate_mined_set(
        num_queries=400,
        negatives_per_query=30,
        num_docs=5000,
        bucket_rates=(0.5,) * 6,
        seed=seed,
    )
    audited = [q.query_id for q in sim.mined.queries[:audited_queries]]
    qrels = {
        qid: dict.fromkeys(sim.relevant[qid] | set(q.positive_ids), 1)
        for qid, q in zip(audited, sim.mined.queries, strict=False)
    }
    oracle = QrelsOracle(qrels)
    audit = run_audit(
        sim.mined,
        None,
        oracle,
        AuditConfig(half_width=half_width, control_size=0, seed=seed),
    )
    rates = audit.rates
    assert audit.eligible_negatives == audited_queries * 30
    assert rates.population == audit.eligible_negatives and rates.total == 400 * 30
    assert rates.overall is not None and rates.stratified is not None
    # The Wilson interval the size was computed for meets the request ...
    assert rates.overall.half_width <= half_width
    # ... and the headline (post-stratified) one within a hair of it.
    assert rates.stratified.half_width <= half_width * 1.05
    if audited_queries < 400:
        assert any("negatives the oracle can judge" in n for n in rates.notes)
