"""``store/views.py``: run summaries, counters and which FN estimate a checkpoint exports."""

from __future__ import annotations

from recallwatch.store import FnEstimate, RunSummary, Store
from tests.helpers.seed import add, finished


def test_audit_failures_are_counted_and_fall_back_to_an_earlier_estimate(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    est = FnEstimate(
        oracle="qrels", sample_size=10, false_negatives=1, estimate=0.1, lower=0.0, upper=0.4
    )
    old, failed, plain = add(store, run, 1, fp="A"), add(store, run, 2, fp="B"), add(store, run, 3)
    store.results.record_fn_estimate(old, "A", "h", est, 5.0)
    for cid in (old, failed, plain):
        store.queue.set_state(cid, "evaluated", 6.0)
    store.results.record_fn_audit_failure(
        failed, run, fingerprint="B", config_hash="h", reason="timeout", message="slow", now=7.0
    )
    assert store.views.fn_audit_failures_by_run() == {("a", "timeout"): 1}
    assert store.views.exported_fn_estimate(store.queue.checkpoint_by_id(failed)) == est
    never_audited = store.queue.checkpoint_by_id(plain)
    assert store.views.exported_fn_estimate(never_audited) is None
    assert store.queue.requeue_failed_audits(run, "other", 8.0) == 0
    assert store.queue.requeue_failed_audits(run, "h", 8.0) == 1
    row = store.queue.checkpoint_by_id(failed)
    assert (row.state, row.audit_only) == ("discovered", True)


def test_a_checkpoint_exports_its_mined_sets_estimate_before_any_fallback(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    on_a = FnEstimate("qrels", 10, 1, 0.1, 0.0, 0.4)
    on_b = FnEstimate("qrels", 10, 3, 0.3, 0.1, 0.6)
    first, second, later = (
        add(store, run, 1, fp="A"),
        add(store, run, 2, fp="B"),
        add(store, run, 3, fp="A"),
    )
    store.results.record_fn_estimate(first, "A", "h", on_a, 5.0)
    store.results.record_fn_estimate(second, "B", "h", on_b, 6.0)  # the run's newest
    row = store.queue.checkpoint_by_id(later)
    assert store.views.exported_fn_estimate(row) == on_a  # its set's, not the run's newest
    store.results.record_fn_audit_failure(
        later, run, fingerprint="A", config_hash="h", reason="timeout", message="slow", now=7.0
    )
    assert store.views.exported_fn_estimate(row) == on_a  # still its set's
    own = FnEstimate("llm", 20, 2, 0.1, 0.02, 0.3)
    store.results.record_fn_estimate(later, "A", "h2", own, 8.0)
    assert store.views.exported_fn_estimate(row) == own  # its own first


def test_latest_and_current_evaluations(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    for step, recall in ((300, 0.3), (100, 0.1), (200, 0.2)):
        cid = add(store, run, step)
        store.results.record_evaluation(finished(cid, recall), run)
        store.results.record_evaluation(finished(cid, 0.99, config_hash="old"), run)
        store.queue.set_state(cid, "evaluated", 1.0)
    latest = store.views.latest_evaluated("a")
    assert latest is not None and latest.name == "checkpoint-300"
    current = store.results.current_evaluations(latest.id)
    assert [e.metrics["recall"][10] for e in current] == [0.3]
    page = store.queue.checkpoints("a", newest_first=True, limit=2, offset=1)
    assert [c.step for c in page] == [200, 100]


def test_mining_change_time_is_the_start_of_the_current_segment(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    for step, fp in ((1, "A"), (2, "A"), (3, "B"), (4, None), (5, "A"), (6, "A")):
        add(store, run, step, fp=fp)
    rows = {c.step: c for c in store.queue.checkpoints("a")}
    # No earlier checkpoint mined differently: the mining never changed.
    assert store.views.mining_change_at(rows[1]) is None
    assert store.views.mining_change_at(rows[2]) is None
    assert store.views.mining_change_at(rows[3]) == 3.0
    # A checkpoint without mining metadata neither changes the mining nor has a change time.
    assert store.views.mining_change_at(rows[4]) is None
    assert store.views.mining_change_at(rows[5]) == 5.0
    assert store.views.mining_change_at(rows[6]) == 5.0
    assert store.queue.mining_content("A") == {"fp": "A"}
    # The same segment start, as a step: where the dashboard marks the change against step.
    steps = {s: store.views.mining_change_step(rows[s]) for s in rows}
    assert steps == {1: None, 2: None, 3: 3, 4: None, 5: 5, 6: 5}


def test_mining_change_ignores_checkpoints_without_metadata_and_other_runs(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    other = store.queue.ensure_run("b", "/runs/b", 1.0)
    add(store, other, 1, fp="B")
    for step, fp in ((2, "A"), (3, None), (4, "A")):
        add(store, run, step, fp=fp)
    rows = {c.step: c for c in store.queue.checkpoints("a")}
    # Run b's different mining and a gap without metadata are no change of run a's mining.
    assert store.views.mining_change_at(rows[4]) is None
    add(store, run, 5, fp="B")
    add(store, run, 6, fp=None)
    add(store, run, 7, fp="A")
    rows = {c.step: c for c in store.queue.checkpoints("a")}
    assert store.views.mining_change_at(rows[5]) == 5.0
    assert store.views.mining_change_at(rows[7]) == 7.0


def test_run_summaries_and_per_run_counters(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    store.queue.ensure_run("idle", "/runs/idle", 1.0)
    done, queued = add(store, run, 1), add(store, run, 2)
    store.results.record_evaluation(finished(done), run)
    store.queue.set_state(done, "evaluated", 13.0)
    store.queue.set_state(queued, "evaluating", 14.0)
    a, idle = store.views.runs()
    assert isinstance(a, RunSummary) and a.name == "a" and a.directory == "/runs/a"
    assert a.states == {"discovered": 0, "evaluating": 1, "evaluated": 1, "failed": 0, "skipped": 0}
    assert a.latest is not None and a.latest.id == done
    assert a.last_successful_evaluation_at == 12.0
    assert (idle.name, idle.latest, idle.last_successful_evaluation_at) == ("idle", None, None)
    assert store.views.pending_by_run() == {"a": 1, "idle": 0}
    assert store.views.last_success_by_run() == {"a": 12.0}
    assert store.views.stage_histograms([0.2, 1.0]) == {
        "encode": ([0, 1], 1, 0.5),
        "metrics": ([1, 1], 1, 0.1),
        "search": ([0, 1], 1, 1.0),
    }


def test_evaluated_ids_are_in_step_order_with_the_latest_last(store: Store) -> None:
    a = store.queue.ensure_run("a", "/runs/a", 1.0)
    b = store.queue.ensure_run("b", "/runs/b", 1.0)
    ids = {step: add(store, a, step) for step in (30, 10, 20, 40)}
    stepless = store.queue.add_checkpoint(
        a, name="final", path="/runs/a/final", step=None, eval_key="{}", completed_at=1, now=1
    )
    assert stepless is not None
    other = add(store, b, 5)
    for cid in (*ids.values(), stepless, other):
        store.queue.set_state(cid, "evaluated", 2.0)
    store.queue.set_state(ids[40], "evaluating", 3.0)  # not evaluated (an audit retry)
    got = store.views.evaluated_ids()
    assert got == {"a": [stepless, ids[10], ids[20], ids[30]], "b": [other]}
    # The last is the run's latest evaluated checkpoint, as the API and the alerts have it.
    latest = store.views.latest_evaluated("a")
    assert latest is not None and latest.id == got["a"][-1]
