"""Evidence of alerts: FN snapshots, recommendations, the previous mining config and its diff."""

from __future__ import annotations

from recallwatch.alerting.evidence import EvidenceReader, fn_snapshot, mining_diff, recommendation
from recallwatch.heldout.texts import TextIndex
from recallwatch.records.alert import FnSnapshot
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import REC, A, B, Clock, Run, hits, make_config


def test_fn_snapshot_and_recommendation_of_an_estimate() -> None:
    est = FnEstimate(
        "qrels", 200, 24, 0.12, 0.08, 0.17, amplification=4.2, details={"recommendation": REC}
    )
    assert fn_snapshot(est) == FnSnapshot(0.12, 0.08, 0.17, "qrels", 200, 4.2)
    assert fn_snapshot(None) is None
    assert recommendation(est) == (
        "set range_min=10: projected FN rate 3.8%, drops 21% of negatives"
    )
    assert recommendation(None) is None
    no_rec = FnEstimate("qrels", 200, 24, 0.12, 0.08, 0.17, details={"recommendation": "x"})
    assert recommendation(no_rec) is None


def test_the_previous_mining_config_and_the_change_from_it(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [])
    run = Run(store, config, synthetic, Clock())
    reader = EvidenceReader(store, TextIndex())
    est_a = FnEstimate("judge", 200, 8, 0.04, 0.02, 0.07)
    first = run.add(100, A, hits(10))
    run.add(200, A, hits(10), fn=est_a)
    run.add(300, None, hits(10))  # no mining metadata: not a mining config
    latest = run.add(400, B, hits(10))
    assert reader.previous_mining_checkpoint(first) is None
    assert reader.mining_diff_before(first) == ()
    previous = reader.previous_mining_checkpoint(latest)
    assert previous is not None and previous.name == "checkpoint-200"  # the newest under A
    assert reader.previous_mining_estimate(latest) == est_a
    changes = reader.mining_diff_before(latest)
    assert [(c.key, c.before, c.after, c.change) for c in changes] == [
        ("mined_set", "a.jsonl", "b.jsonl", "changed"),
        ("range_min", 10, 0, "changed"),
    ]
    assert reader.mining_diff(None, latest.mining_fingerprint) == ()


def test_lost_queries_are_counted_and_the_first_few_named(
    store: Store, synthetic: SyntheticSet
) -> None:
    reader = EvidenceReader(store, TextIndex())
    qids = synthetic.query_ids[:8]
    before = {q: {next(iter(synthetic.qrels[q])): 1} for q in qids}
    after = {q: {next(iter(synthetic.qrels[q])): 0} for q in qids}
    count, named = reader.lost_queries(synthetic.path, before, after, 10)
    assert count == 8 and len(named) == 5
    assert all(q.query_text.startswith("question ") for q in named)
    assert all(q.doc_title.startswith("Document ") for q in named)


def test_mining_diff_is_key_by_key_and_nested() -> None:
    before = {"teacher": "m1", "range_min": 0, "nested": {"a": 1, "b": [1, 2]}, "gone": True}
    after = {"teacher": "m1", "range_min": 10, "nested": {"a": 1, "b": [1, 3]}, "new": None}
    diff = [(c.key, c.before, c.after, c.change) for c in mining_diff(before, after)]
    assert diff == [
        ("gone", True, None, "removed"),
        ("nested.b", [1, 2], [1, 3], "changed"),
        ("new", None, None, "added"),
        ("range_min", 0, 10, "changed"),
    ]
    assert mining_diff({"x": 1}, {"x": 1.0})[0].change == "changed"  # 1 vs 1.0 is a change
    assert mining_diff(before, before) == []
