"""Review labels drive the daemon's estimate (``daemon.review_feed``), on a test clock.

A real store, a simulated mined set, the daemon's auditor in process and its alerting. Labels are
written to the store as ``/review`` writes them and announced with ``Daemon.review_changed``; the
re-estimate is due a debounce later on the injected clock and run with ``run_due``.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from recallwatch.daemon import Daemon
from recallwatch.daemon.notifier import Notifier
from recallwatch.daemon.review_feed import ReviewFeed
from recallwatch.daemon.runner import estimate_in_process
from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from tests.daemon.helpers import Clock, daemon, make_config, poll_until_idle
from tests.helpers.runs import fn_section, write_checkpoint

THRESHOLD = 0.3
RULES = {
    "channels": [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"}],
    "rules": [
        {"name": "fn", "type": "false_negative_rate", "threshold": THRESHOLD, "channels": ["am"]}
    ],
}


def _setup(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, oracles: list[str]
) -> tuple[Daemon, ReviewFeed, Clock, str]:
    run = tmp_path / "run"
    simulate_mined_set(num_queries=60, negatives_per_query=10, num_docs=1500, seed=4).write(run)
    write_checkpoint(run, 100, synthetic, mining={"mined_set": "mined.jsonl"})
    section = fn_section(run, sample_size=40, seed=3, control_size=0)
    section["oracles"] = [o if o != "qrels" else section["oracles"][0] for o in oracles]
    config = make_config(tmp_path, synthetic, false_negatives=section, notifications=RULES)
    clock = Clock(1e10)
    d = daemon(
        config,
        store,
        clock=clock,
        fn_runner=estimate_in_process,
        notifier=Notifier(config, store, clock=clock),
    )
    assert d.review is not None
    poll_until_idle(d)
    (row,) = store.queue.checkpoints("demo")
    assert row.state == "evaluated" and row.mining_fingerprint is not None
    return d, d.review, clock, row.mining_fingerprint


def _label(store: Store, d: Daemon, key: str, n: int, label: str, clock: Clock) -> None:
    """Label the first ``n`` items of the review sample as reviewer ``ann``, quickly."""
    assert d.review is not None
    plan = d.review.plans(key)
    assert plan is not None
    for item in plan.items[:n]:
        clock.now += 0.1
        store.reviews.record(key, item.query_id, item.doc_id, label, "ann", clock.now)
        d.review_changed(key)


def _undo(store: Store, d: Daemon, key: str, n: int) -> None:
    """Take back ``n`` of ann's labels, the most recent first (the page's undo)."""
    for row in list(reversed(store.reviews.labels(key)))[:n]:
        store.reviews.remove(key, row.query_id, row.doc_id, "ann")
        d.review_changed(key)


def _settle(feed: ReviewFeed, clock: Clock, key: str) -> None:
    """Nothing runs before the debounce; then the set is re-estimated once."""
    due = feed.pending()[key]
    assert due > clock.now
    assert feed.run_due() == []
    clock.now = due
    assert feed.run_due() == [key]
    assert feed.pending() == {}


def _ratio(store: Store, bound: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="test", audited=True))
    return registry.get_sample_value(
        "recallwatch_false_negative_ratio", {"run": "demo", "bound": bound}
    )


def test_review_labels_alone_open_and_resolve_the_alert_with_the_sprt_as_evidence(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d, feed, clock, key = _setup(tmp_path, synthetic, store, ["review"])
    (row,) = store.queue.checkpoints("demo")
    # Only people judge, and nobody has: no estimate, no failed audit, no alert.
    assert store.results.fn_estimate(row.id) is None
    assert store.results.fn_audit_failure(row.id) is None
    assert _ratio(store, "lower") is None

    _label(store, d, key, 6, "relevant", clock)
    _settle(feed, clock, key)
    est = store.results.fn_estimate(row.id)
    assert est is not None and est.source == "review" and est.oracle == "review"
    assert (est.sample_size, est.false_negatives) == (6, 6)
    human = est.details["human_labels"]
    assert (human["labels"], human["relevant"], human["reviewers"]) == (6, 6, ["ann"])
    assert est.details["sprt"]["decision"] == "too_high"
    assert _ratio(store, "lower") == est.lower > THRESHOLD
    (alert,) = [r.alert for r in store.ledger.open_alerts()]
    assert alert.alertname == "FalseNegativeRateHigh"
    assert alert.evidence.details["source"] == "review"
    assert alert.evidence.details["sprt_decision"] == "too_high"
    assert alert.evidence.details["human_labels"]["reviewers"] == ["ann"]
    assert "6 human review labels" in alert.summary

    # Undo all but one: 1 of 1 relevant has a lower bound under the threshold.
    _undo(store, d, key, 5)
    _settle(feed, clock, key)
    back = store.results.fn_estimate(row.id)
    assert back is not None and (back.sample_size, back.source) == (1, "review")
    assert back.lower < THRESHOLD
    assert _ratio(store, "lower") == back.lower
    assert store.ledger.open_alerts() == []
    # Every estimate stays in the history, in order.
    history = [e.sample_size for _, e in store.results.fn_estimate_history(row.id)]
    assert history == [6, 1]


def test_beside_a_judge_people_take_over_once_decisive_and_undo_brings_the_judge_back(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d, feed, clock, key = _setup(tmp_path, synthetic, store, ["qrels", "review"])
    (row,) = store.queue.checkpoints("demo")
    judge = store.results.fn_estimate(row.id)
    assert judge is not None and judge.source == "audit" and judge.oracle.startswith("qrels:")

    # Two labels do not decide the SPRT: the judge's estimate stands, nothing new is stored.
    _label(store, d, key, 2, "relevant", clock)
    _settle(feed, clock, key)
    assert store.results.fn_estimate_history(row.id) == [(1e10, judge)]

    _label(store, d, key, 6, "relevant", clock)  # the same two again, and four more
    _settle(feed, clock, key)
    people = store.results.fn_estimate(row.id)
    assert people is not None and people.source == "review"
    assert people.details["sprt"]["decision"] == "too_high"

    _undo(store, d, key, 6)
    _settle(feed, clock, key)
    sources = [e.source for _, e in store.results.fn_estimate_history(row.id)]
    assert sources == ["audit", "review", "audit"]
    assert store.results.fn_estimate(row.id) == judge


def test_labels_stored_while_the_daemon_was_down_are_used_at_start(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    _, feed, clock, key = _setup(tmp_path, synthetic, store, ["review"])
    plan = feed.plans(key)
    assert plan is not None
    for item in plan.items[:3]:
        store.reviews.record(key, item.query_id, item.doc_id, "not_relevant", "bob", clock.now)
    feed.catch_up()
    assert feed.pending() == {key: clock.now}
    assert feed.run_due() == [key]
    (row,) = store.queue.checkpoints("demo")
    est = store.results.fn_estimate(row.id)
    assert est is not None and (est.sample_size, est.false_negatives) == (3, 0)
