"""``store/queue.py``: runs, checkpoints, state transitions, recovery, re-queueing, audit_only."""

from __future__ import annotations

import json

from recallwatch.store import CheckpointRow, FnEstimate, Store
from tests.helpers.seed import KEY, add, fail, finished


def test_checkpoint_is_recorded_once(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    assert store.queue.ensure_run("a", "/runs/a", 2.0) == run
    add(store, run, 100)
    again = store.queue.add_checkpoint(
        run, name="checkpoint-100", path="/x", step=100, eval_key=KEY, completed_at=1, now=2
    )
    assert again is None
    assert store.queue.checkpoint_names(run) == {"checkpoint-100"}


def test_recover_requeues_interrupted_checkpoints(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    assert store.queue.set_state(cid, "evaluating", 5.0, expect=["discovered"])
    assert not store.queue.set_state(cid, "evaluating", 5.0, expect=["discovered"])
    recovered = store.queue.recover(6.0)
    assert [c.name for c in recovered] == ["checkpoint-100"]
    row = store.queue.checkpoint("a", "checkpoint-100")
    assert row is not None and row.state == "discovered" and row.attempts == 1


def test_rekey_requeues_only_other_keys(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    for step in (1, 2, 3):
        add(store, run, step)
    store.queue.set_state(store.queue.checkpoint("a", "checkpoint-1").id, "evaluated", 1)  # type: ignore[union-attr]
    store.queue.set_state(store.queue.checkpoint("a", "checkpoint-2").id, "skipped", 1)  # type: ignore[union-attr]
    assert store.queue.rekey(run, KEY, 2.0) == 0
    assert store.queue.rekey(run, json.dumps({"synth": "k2"}), 2.0) == 2  # evaluated and discovered
    states = {c.name: c.state for c in store.queue.checkpoints("a")}
    assert states == {
        "checkpoint-1": "discovered",
        "checkpoint-2": "skipped",
        "checkpoint-3": "discovered",
    }


def test_checkpoints_are_typed_rows_in_step_order(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    for step in (300, 100, 200):
        add(store, run, step, fp="A")
    rows = store.queue.checkpoints("a")
    assert [c.step for c in rows] == [100, 200, 300]
    first = rows[0]
    assert isinstance(first, CheckpointRow)
    assert (first.run, first.state, first.mining_fingerprint) == ("a", "discovered", "A")
    assert first.audit_only is False and first.attempts == 0
    assert store.queue.checkpoint_by_id(first.id) == first
    assert store.queue.count_checkpoints("a", states=["discovered"]) == 3
    assert store.queue.count_checkpoints("a", states=["evaluated"]) == 0


def _audit_retry(store: Store) -> tuple[int, int]:
    """A run with an evaluated checkpoint whose audit failed, queued again: (run id, its id)."""
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 1, fp="A")
    store.results.record_evaluation(finished(cid), run)
    store.queue.set_state(cid, "evaluated", 2.0)
    store.results.record_fn_audit_failure(
        cid, run, fingerprint="A", config_hash="h", reason="timeout", message="slow", now=3.0
    )
    assert store.queue.requeue_failed_audits(run, "h", 4.0) == 1
    return run, cid


def test_an_audit_retry_is_queued_audit_only_without_a_pseudo_reason(store: Store) -> None:
    _, cid = _audit_retry(store)
    row = store.queue.checkpoint_by_id(cid)
    assert (row.state, row.audit_only, row.state_reason) == ("discovered", True, None)


def test_audit_only_survives_evaluating_and_recovery(store: Store) -> None:
    _, cid = _audit_retry(store)
    assert store.queue.set_state(cid, "evaluating", 5.0, expect=["discovered"])
    assert store.queue.checkpoint_by_id(cid).audit_only
    (recovered,) = store.queue.recover(6.0)
    assert recovered.id == cid and recovered.audit_only
    row = store.queue.checkpoint_by_id(cid)
    assert (row.state, row.state_reason, row.audit_only) == ("discovered", "interrupted", True)
    store.queue.set_state(cid, "discovered", 7.0, reason="interrupted")  # a shutdown
    assert store.queue.checkpoint_by_id(cid).audit_only


def test_audit_only_is_cleared_by_evaluated_failed_skipped_and_rekey(store: Store) -> None:
    run, cid = _audit_retry(store)
    store.queue.set_state(cid, "evaluated", 5.0)
    assert not store.queue.checkpoint_by_id(cid).audit_only
    for final in ("failed", "skipped"):
        store.queue.set_state(cid, "evaluated", 6.0)
        assert store.queue.requeue_failed_audits(run, "h", 7.0) == 1
        store.queue.set_state(cid, final, 8.0, reason="x")  # type: ignore[arg-type]
        row = store.queue.checkpoint_by_id(cid)
        assert (row.state, row.audit_only) == (final, False)
    store.queue.set_state(cid, "evaluated", 9.0)
    assert store.queue.requeue_failed_audits(run, "h", 10.0) == 1
    fail(store, cid, "internal", "boom", at=11)
    assert not store.queue.checkpoint_by_id(cid).audit_only
    store.queue.set_state(cid, "evaluated", 13.0)
    assert store.queue.requeue_failed_audits(run, "h", 14.0) == 1
    assert store.queue.rekey(run, json.dumps({"synth": "k2"}), 15.0) == 1  # a full re-run now
    row = store.queue.checkpoint_by_id(cid)
    assert (row.state, row.state_reason, row.audit_only) == ("discovered", "config_changed", False)


def test_an_audited_mined_set_is_not_queued_again(store: Store) -> None:
    run, cid = _audit_retry(store)
    store.queue.set_state(cid, "evaluated", 5.0)
    est = FnEstimate("qrels", 10, 1, 0.1, 0.0, 0.4)
    other = add(store, run, 2, fp="A")
    store.results.record_fn_estimate(other, "A", "h", est, 6.0)  # the set has an estimate now
    assert store.queue.requeue_failed_audits(run, "h", 7.0) == 0
    assert not store.queue.checkpoint_by_id(cid).audit_only
