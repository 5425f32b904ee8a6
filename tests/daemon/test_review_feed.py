"""Review labels drive the daemon's estimate (``daemon.review_feed``), on a test clock.

A real store, a simulated mined set, the daemon's auditor in process and its alerting. Labels are
written to the store as ``/review`` writes them and announced with ``Daemon.review_changed``; the
re-estimate is due a debounce later on the injected clock and run with ``run_due``.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from recallwatch.daemon import Daemon
from recallwatch.daemon.notifier import Notifier
from recallwatch.daemon.review_feed import REVIEW_RETRY_SECONDS, ReviewFeed
from recallwatch.daemon.review_ppi import JUDGED_SAMPLE, PPI_SOURCE
from recallwatch.daemon.runner import AuditJob, AuditRunner, estimate_in_process
from recallwatch.errors import EvaluationError
from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.mining.review import live_estimate
from recallwatch.server import create_app
from recallwatch.stats.ppi import ppi_rate
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from recallwatch.views.reviews import review_labels
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
    tmp_path: Path,
    synthetic: SyntheticSet,
    store: Store,
    oracles: list[str],
    fn_runner: AuditRunner = estimate_in_process,
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
        fn_runner=fn_runner,
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


def _judge_codes(judge: FnEstimate) -> dict[tuple[str, str], int]:
    return {(q, d): c for q, d, c in judge.details[JUDGED_SAMPLE]["pairs"]}


def test_beside_a_judge_the_estimate_is_prediction_powered_and_undo_brings_the_judge_back(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d, feed, clock, key = _setup(tmp_path, synthetic, store, ["qrels", "review"])
    (row,) = store.queue.checkpoints("demo")
    judge = store.results.fn_estimate(row.id)
    assert judge is not None and judge.source == "audit" and judge.oracle.startswith("qrels:")
    plan = feed.plans(key)
    assert plan is not None
    codes = _judge_codes(judge)
    f = np.array([codes[(i.query_id, i.doc_id)] for i in plan.items], dtype=np.float64)
    assert set(np.unique(f)) == {0.0, 1.0}  # the judge labelled every item of the sample

    # People label the first 20: every pair the judge calls relevant, and every other one more.
    n = 20
    y = np.array([1.0 if f[k] == 1 or k % 2 == 0 else 0.0 for k in range(n)])
    assert f[:n].sum() >= 1 and (y[:n] > f[:n]).sum() >= 1
    for k, item in enumerate(plan.items[:n]):
        clock.now += 0.1
        label = "relevant" if y[k] else "not_relevant"
        store.reviews.record(key, item.query_id, item.doc_id, label, "ann", clock.now)
        d.review_changed(key)
    _settle(feed, clock, key)

    est = store.results.fn_estimate(row.id)
    assert est is not None and est.source == PPI_SOURCE == "ppi"
    # The stored estimate is stats.ppi's PPI++ on the same labels, finite-population aware.
    direct = ppi_rate(y, f[:n], f[n:], population=plan.drawn.sample.population)
    assert direct.lam > 0  # the judge's labels correct the people's: not people-only
    assert (est.estimate, est.lower, est.upper) == pytest.approx(
        (direct.interval.estimate, direct.interval.lower, direct.interval.upper), abs=1e-12
    )
    assert est.upper - est.lower <= direct.people_only.upper - direct.people_only.lower
    assert (est.sample_size, est.false_negatives) == (len(plan.items), int(f.sum()))
    people = est.details["people"]
    assert people["used"] == "ppi"
    assert people["estimates"]["judge"]["estimate"] == pytest.approx(judge.estimate)
    assert people["estimates"]["people"]["estimate"] == pytest.approx(y.mean())
    (agreement,) = people["agreement"]
    tp, missed = int(f[:n].sum()), int((y > f[:n]).sum())
    assert agreement["confusion"] == {
        "people_relevant": {"judge_relevant": tp, "judge_not_relevant": missed},
        "people_not_relevant": {"judge_relevant": 0, "judge_not_relevant": n - tp - missed},
    }
    assert (agreement["sensitivity"], agreement["specificity"]) == (tp / (tp + missed), 1.0)
    assert est.details["human_labels"]["labels"] == n
    assert est.details["sprt"] == feed_sprt(feed, key)
    assert est.details["curve"] == judge.details["curve"]  # the judge's curve stays on the pages
    # /metrics and the alert follow the prediction-powered estimate.
    assert _ratio(store, "lower") == est.lower
    assert est.lower > THRESHOLD >= judge.lower  # the people's correction opens the alert
    (alert,) = [r.alert for r in store.ledger.open_alerts()]
    assert alert.alertname == "FalseNegativeRateHigh"
    assert alert.evidence.details["source"] == "ppi"
    assert alert.evidence.details["used"] == "ppi"
    assert alert.evidence.details["agreement"]["sensitivity"] == agreement["sensitivity"]
    assert alert.evidence.details["human_labels"]["labels"] == n
    assert "prediction-powered" in alert.summary and f"{n} human review labels" in alert.summary

    # The API and the audit page show the trio and say the daemon uses the PPI estimate.
    app = create_app(store, CollectorRegistry(), readiness=lambda: {"ready": True}, version="t")
    with TestClient(app) as client:
        api = client.get("/api/v1/runs/demo/checkpoints/checkpoint-100").json()
        page = client.get("/runs/demo/checkpoints/checkpoint-100/false-negatives").text
    fn = api["false_negatives"]
    assert (fn["source"], fn["estimate"], fn["people"]["used"]) == ("ppi", est.estimate, "ppi")
    assert fn["human_labels"]["labels"] == n and fn["sprt"] == est.details["sprt"]
    assert 'id="fn-review">prediction-powered (PPI++)' in page
    assert '<tr data-estimate="ppi"><td>prediction-powered' in page
    assert page.split('<tr data-estimate="ppi">')[1].split("</tr>")[0].endswith("<b>used</b></td>")

    # Undo every label: the judge's estimate alone comes back, as a new row.
    _undo(store, d, key, n)
    _settle(feed, clock, key)
    sources = [e.source for _, e in store.results.fn_estimate_history(row.id)]
    assert sources == ["audit", "ppi", "audit"]
    back = store.results.fn_estimate(row.id)
    assert back is not None and (back.estimate, back.lower, back.upper) == (
        judge.estimate,
        judge.lower,
        judge.upper,
    )
    assert _ratio(store, "lower") == judge.lower
    assert store.ledger.open_alerts() == []


def feed_sprt(feed: ReviewFeed, key: str) -> dict[str, object]:
    """The SPRT the review page shows for the set's labels now."""
    plan = feed.plans(key)
    assert plan is not None
    return dict(live_estimate(plan, review_labels(feed.store, key)).sprt)


def _without_judged_sample(job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
    """An audit as stored before the judge's labels per pair were kept."""
    est = estimate_in_process(job, timeout, cancel)
    return replace(est, details={k: v for k, v in est.details.items() if k != JUDGED_SAMPLE})


def test_without_the_judges_labels_per_pair_people_take_over_once_decisive(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d, feed, clock, key = _setup(
        tmp_path, synthetic, store, ["qrels", "review"], fn_runner=_without_judged_sample
    )
    (row,) = store.queue.checkpoints("demo")
    judge = store.results.fn_estimate(row.id)
    assert judge is not None and judge.source == "audit" and JUDGED_SAMPLE not in judge.details

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


def test_labels_given_before_the_judges_audit_are_combined_once_it_is_stored(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    calls: list[AuditJob] = []

    def judge_down_once(job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        calls.append(job)
        if len(calls) == 1:
            raise EvaluationError("judge_failed", "the judge is down")
        return estimate_in_process(job, timeout, cancel)

    d, feed, clock, key = _setup(
        tmp_path, synthetic, store, ["qrels", "review"], fn_runner=judge_down_once
    )
    (first,) = store.queue.checkpoints("demo")
    assert store.results.fn_estimate(first.id) is None
    assert store.results.fn_audit_failure(first.id) is not None
    plan = feed.plans(key)
    assert plan is not None
    for item in plan.items[:10]:  # labelled while the judge was down (no re-estimate asked)
        store.reviews.record(key, item.query_id, item.doc_id, "relevant", "ann", clock.now)

    # The set's next checkpoint audits it again; once stored, the labels are combined with it.
    write_checkpoint(tmp_path / "run", 200, synthetic, mining={"mined_set": "mined.jsonl"})
    poll_until_idle(d)
    assert len(calls) == 2
    assert feed.pending() == {key: clock.now}
    assert feed.run_due() == [key]
    est = store.results.fn_estimate(first.id)
    assert est is not None and est.source == PPI_SOURCE
    assert est.details["human_labels"]["labels"] == 10


def test_a_failed_re_estimate_is_counted_in_readyz_and_retried_after_a_minute(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, feed, clock, key = _setup(tmp_path, synthetic, store, ["review"])
    (row,) = store.queue.checkpoints("demo")
    _label(store, d, key, 6, "relevant", clock)
    real = feed.refresh
    calls: list[str] = []

    def broken(k: str) -> None:
        calls.append(k)
        raise OSError("disk went away")

    monkeypatch.setattr(feed, "refresh", broken)
    clock.now = feed.pending()[key]
    assert feed.run_due() == [key]
    assert calls == [key] and feed.failures == 1
    assert d.readiness()["handled"]["review_estimate_failures"] == 1
    assert store.results.fn_estimate(row.id) is None
    # Retried a minute later without another label; the retry stores the people's estimate.
    assert feed.pending()[key] == pytest.approx(clock.now + REVIEW_RETRY_SECONDS)
    monkeypatch.setattr(feed, "refresh", real)
    assert feed.run_due() == []
    clock.now += REVIEW_RETRY_SECONDS
    assert feed.run_due() == [key]
    assert feed.pending() == {}
    est = store.results.fn_estimate(row.id)
    assert est is not None and est.source == "review"
    assert d.readiness()["handled"]["review_estimate_failures"] == 1
