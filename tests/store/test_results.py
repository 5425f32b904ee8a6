"""``store/results.py``: evaluations, outcomes, stage timings, FN estimates and audit failures."""

from __future__ import annotations

import json
import sqlite3

import pytest

from recallwatch.store import (
    FnAuditFailure,
    FnBucket,
    FnEstimate,
    Store,
    pack_outcomes,
    unpack_outcomes,
)
from tests.helpers.seed import add, fail, finished


def test_done_evaluations_are_unique_per_key(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    assert store.results.done_evaluation(cid, "synth", "precomputed", "k1") is None
    eid = store.results.record_evaluation(finished(cid), run)
    assert store.results.done_evaluation(cid, "synth", "precomputed", "k1") == eid
    with pytest.raises(sqlite3.IntegrityError):
        store.results.record_evaluation(finished(cid), run)
    store.results.record_evaluation(finished(cid, config_hash="k2"), run)  # another config: allowed
    assert store.results.outcomes(eid) == {"q1": {"d1": 3}, "q2": {"d2": 0, "d3": 11}}
    assert store.views.counts_by_run() == {"a": 2}


def test_failure_is_recorded_with_the_checkpoint_state(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    fail(store, cid, "bad_embeddings", "NaN")
    row = store.queue.checkpoint("a", "checkpoint-100")
    assert row is not None and (row.state, row.state_reason) == ("failed", "bad_embeddings")
    assert store.views.failures_by_run() == {("a", "bad_embeddings"): 1}


def test_metric_k_keys_are_ints_in_python_and_strings_on_disk(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    eid = store.results.record_evaluation(finished(cid, 0.25), run)
    (ev,) = store.results.evaluations(cid)
    assert ev.id == eid and ev.status == "done"
    assert ev.metrics == {"recall": {10: 0.25}}
    assert ev.timings == {"encode": 0.5, "search": 1.0, "metrics": 0.1}
    assert ev.counts == {"queries": 2}
    (stored,) = store.db.query("SELECT metrics FROM evaluations WHERE id = ?", (eid,))
    assert json.loads(stored[0]) == {"recall": {"10": 0.25}}  # the format on disk is unchanged


def test_a_failed_evaluation_has_no_metrics(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    fail(store, cid, "timeout", "slow")
    (ev,) = store.results.evaluations(cid)
    assert (ev.status, ev.metrics, ev.reason, ev.message) == ("failed", {}, "timeout", "slow")
    assert store.results.current_evaluations(cid) == []
    assert store.results.outcomes(ev.id) == {}


def test_fn_estimates_are_found_by_mined_set(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 1, fp="A")
    est = FnEstimate(
        oracle="qrels",
        sample_size=200,
        false_negatives=12,
        estimate=0.06,
        lower=0.035,
        upper=0.1,
        amplification=4.0,
        buckets=(FnBucket("1-5", 50, 6, 0.12, 0.05, 0.24),),
    )
    store.results.record_fn_estimate(cid, "A", "fnhash", est, 5.0)
    assert store.results.fn_estimate_for("A", "fnhash") == est
    assert store.results.fn_estimate_for("A", "other") is None
    assert store.results.fn_estimate(cid) == est


def test_the_latest_audit_failure_is_a_typed_row(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 1, fp="A")
    assert store.results.fn_audit_failure(cid) is None
    for reason, now in (("timeout", 7.0), ("judge_error", 8.0)):
        store.results.record_fn_audit_failure(
            cid, run, fingerprint="A", config_hash="h", reason=reason, message="m", now=now
        )
    failure = store.results.fn_audit_failure(cid)
    assert failure == FnAuditFailure(reason="judge_error", message="m", failed_at=8.0)


def test_outcomes_round_trip_compactly() -> None:
    outcomes = {f"q{i}": {f"d{i}": i % 100, f"e{i}": 0} for i in range(5000)}
    blob = pack_outcomes(outcomes)
    assert unpack_outcomes(blob) == outcomes
    assert len(blob) < 40_000
