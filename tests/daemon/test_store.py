"""The SQLite store: migrations, idempotent keys, crash recovery, locking."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from recallwatch.store import (
    MIGRATIONS,
    FnBucket,
    FnEstimate,
    NewEvaluation,
    Store,
    StoreError,
    pack_outcomes,
    unpack_outcomes,
)

KEY = json.dumps({"synth": "k1"})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "rw.db")
    yield s  # type: ignore[misc]
    s.close()


def add(store: Store, run_id: int, step: int, *, fp: str | None = None) -> int:
    cid = store.queue.add_checkpoint(
        run_id,
        name=f"checkpoint-{step}",
        path=f"/runs/a/checkpoint-{step}",
        step=step,
        eval_key=KEY,
        completed_at=float(step),
        now=1000.0 + step,
        mining_fingerprint=fp,
        mining_content=None if fp is None else json.dumps({"fp": fp}),
    )
    assert cid is not None
    return cid


def finished(cid: int, recall: float = 0.5, config_hash: str = "k1") -> NewEvaluation:
    return NewEvaluation(
        checkpoint_id=cid,
        dataset="synth",
        encoder="precomputed",
        config_hash=config_hash,
        started_at=10.0,
        finished_at=12.0,
        metrics={"recall": {10: recall}},
        timings={"encode": 0.5, "search": 1.0, "metrics": 0.1},
        counts={"queries": 2},
        outcomes={"q1": {"d1": 3}, "q2": {"d2": 0, "d3": 11}},
    )


def test_schema_is_migrated_once_and_wal(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "rw.db")
    assert s.schema_version == len(MIGRATIONS)
    s.close()
    conn = sqlite3.connect(tmp_path / "rw.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this recallwatch"):
        Store.open(tmp_path / "rw.db")


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "rw.db")
    with pytest.raises(StoreError, match=r"in use by another recallwatch process \(pid \d+\)"):
        Store.open(tmp_path / "rw.db")
    reader = Store.open(tmp_path / "rw.db", exclusive=False)
    assert reader.ping()
    reader.close()
    first.close()
    Store.open(tmp_path / "rw.db").close()


def test_unopenable_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="writable"):
        Store.open(tmp_path / "file" / "rw.db")
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)


def test_a_failing_commit_is_rolled_back_and_the_store_stays_usable(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    # A real failing COMMIT: with foreign keys checked at commit time, a row naming a run that
    # does not exist is accepted by the INSERT and refused by the COMMIT.
    store._conn.execute("PRAGMA defer_foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.results.record_stage(run + 99, "encode", 1.0, 2.0)
    assert not store._conn.in_transaction
    # Later writes work (before the fix: "cannot start a transaction within a transaction").
    store.results.record_stage(run, "encode", 3.0, 4.0)
    assert store.queue.ensure_run("b", "/runs/b", 5.0) != run
    assert store.views.stage_histograms([10.0]) == {"encode": ([1], 1, 3.0)}


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
    assert store.views.exported_fn_estimate(store.queue.checkpoint_by_id(plain)) is None  # never audited
    assert store.queue.requeue_failed_audits(run, "other", 8.0) == 0
    assert store.queue.requeue_failed_audits(run, "h", 8.0) == 1
    row = store.queue.checkpoint_by_id(failed)
    assert (row.state, row.state_reason) == ("discovered", "fn_retry")


def test_checkpoint_is_recorded_once(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    assert store.queue.ensure_run("a", "/runs/a", 2.0) == run
    add(store, run, 100)
    again = store.queue.add_checkpoint(
        run, name="checkpoint-100", path="/x", step=100, eval_key=KEY, completed_at=1, now=2
    )
    assert again is None
    assert store.queue.checkpoint_names(run) == {"checkpoint-100"}


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


def test_recover_requeues_interrupted_checkpoints(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    assert store.queue.set_state(cid, "evaluating", 5.0, expect=["discovered"])
    assert not store.queue.set_state(cid, "evaluating", 5.0, expect=["discovered"])
    recovered = store.queue.recover(6.0)
    assert [c.name for c in recovered] == ["checkpoint-100"]
    row = store.queue.checkpoint("a", "checkpoint-100")
    assert row is not None and row.state == "discovered" and row.attempts == 1


def test_failure_is_recorded_with_the_checkpoint_state(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    cid = add(store, run, 100)
    store.results.record_failure(
        cid,
        dataset="synth",
        encoder="precomputed",
        config_hash="k1",
        started_at=1,
        finished_at=2,
        reason="bad_embeddings",
        message="NaN",
    )
    row = store.queue.checkpoint("a", "checkpoint-100")
    assert row is not None and (row.state, row.state_reason) == ("failed", "bad_embeddings")
    assert store.views.failures_by_run() == {("a", "bad_embeddings"): 1}


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
    assert [e.metrics["recall"]["10"] for e in current] == [0.3]
    page = store.queue.checkpoints("a", newest_first=True, limit=2, offset=1)
    assert [c.step for c in page] == [200, 100]


def test_mining_change_time_is_the_start_of_the_current_streak(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    for step, fp in ((1, "A"), (2, "A"), (3, "B"), (4, None), (5, "A"), (6, "A")):
        add(store, run, step, fp=fp)
    rows = {c.step: c for c in store.queue.checkpoints("a")}
    assert store.views.mining_change_at(rows[2]) == 1.0
    assert store.views.mining_change_at(rows[3]) == 3.0
    assert store.views.mining_change_at(rows[6]) == 5.0
    assert store.views.mining_change_at(rows[4]) is None
    assert store.queue.mining_content("A") == {"fp": "A"}


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


def test_outcomes_round_trip_compactly() -> None:
    outcomes = {f"q{i}": {f"d{i}": i % 100, f"e{i}": 0} for i in range(5000)}
    blob = pack_outcomes(outcomes)
    assert unpack_outcomes(blob) == outcomes
    assert len(blob) < 40_000
