"""The exporter's aggregates follow the store: new rows, state changes, restarts, deleted rows."""

from __future__ import annotations

from recallwatch.store import Store
from recallwatch.store.totals import CheckpointIndex, HistoryTotals
from tests.helpers.seed import add, fail, finished, record_evaluated

BUCKETS = (0.2, 1.0)


def _direct(store: Store) -> tuple[dict[str, int], dict[tuple[str, str], int], list[int]]:
    done = store.db.query(
        "SELECT r.name, COUNT(e.id) FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id "
        "LEFT JOIN evaluations e ON e.checkpoint_id = c.id AND e.status = 'done' GROUP BY r.name"
    )
    failed = store.db.query(
        "SELECT r.name, e.reason, COUNT(*) FROM evaluations e JOIN checkpoints c "
        "ON c.id = e.checkpoint_id JOIN runs r ON r.id = c.run_id WHERE e.status = 'failed' "
        "GROUP BY r.name, e.reason"
    )
    evaluated = store.db.query(
        "SELECT id FROM checkpoints WHERE state = 'evaluated' ORDER BY step IS NOT NULL, step, name"
    )
    return (
        {r[0]: r[1] for r in done},
        {(r[0], r[1]): r[2] for r in failed},
        [r[0] for r in evaluated],
    )


def test_the_aggregates_follow_writes_restarts_and_deleted_rows(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    totals, index = HistoryTotals(store.db), CheckpointIndex(store.db)
    for step in range(1, 7):
        cid = add(store, run, step)
        if step == 3:
            fail(store, cid, "timeout")
        else:
            record_evaluated(store, run, finished(cid), at=20.0 + step)
    done, failed, evaluated = _direct(store)
    assert totals.counts_by_run() == done == {"a": 5}
    assert totals.failures_by_run() == failed == {("a", "timeout"): 1}
    assert index.evaluated_ids() == {"a": evaluated}
    # Read once, then advanced: a state change and a new checkpoint are seen.
    store.queue.set_state(evaluated[0], "skipped", 30.0)
    record_evaluated(store, run, finished(add(store, run, 7)), at=31.0)
    _, _, evaluated = _direct(store)
    assert index.evaluated_ids() == {"a": evaluated} and len(evaluated) == 5
    assert index.states_by_run()["a"]["skipped"] == 1
    assert totals.counts_by_run() == {"a": 6}
    hist = totals.stage_histograms(BUCKETS)
    assert hist["search"] == ([0, 6], 6, 6.0)  # every seeded search took 1 s
    # A restart (new readers) reads the same values.
    assert HistoryTotals(store.db).counts_by_run() == {"a": 6}
    assert CheckpointIndex(store.db).evaluated_ids() == {"a": evaluated}
    # Rows deleted (a compaction): the oldest evaluations and timings, and the oldest log entries
    # of checkpoint changes; the readers reload what the store now holds.
    with store.db.transaction() as conn:
        conn.execute("DELETE FROM evaluations WHERE id <= 2")
        conn.execute("DELETE FROM stage_timings WHERE id <= 6")
        conn.execute("UPDATE checkpoints SET state = 'skipped' WHERE id = ?", (evaluated[1],))
        conn.execute(
            "DELETE FROM checkpoint_changes WHERE seq <= (SELECT MAX(seq) FROM checkpoint_changes)"
        )
    done, _, evaluated = _direct(store)
    assert totals.counts_by_run() == done == {"a": 4}
    assert totals.stage_histograms(BUCKETS)["search"][1] == 4
    assert index.evaluated_ids() == {"a": evaluated} and len(evaluated) == 4


def test_the_index_logs_what_became_evaluated_and_finds_the_latest_by_key(store: Store) -> None:
    run = store.queue.ensure_run("a", "/runs/a", 1.0)
    index = CheckpointIndex(store.db)
    ids = [add(store, run, step) for step in (30, 10, 20)]
    start, unknown = index.evaluated_changes(None)
    assert unknown is None and index.evaluated_runs() == []
    for cid in (ids[0], ids[1]):
        record_evaluated(store, run, finished(cid), at=40.0)
    position, changes = index.evaluated_changes(start)
    assert changes == [("a", ids[0]), ("a", ids[1])]
    # Step order, whatever the order they were evaluated in; the latest by key, past an exclusion.
    assert index.evaluated_ids() == {"a": [ids[1], ids[0]]}
    assert index.latest_evaluated("a") == ids[0]
    assert index.latest_evaluated("a", {ids[0]}) == ids[1]
    assert index.is_evaluated(ids[1]) and not index.is_evaluated(ids[2])
    # Seen leaving and re-entering the evaluated state: logged again; the order is kept.
    store.queue.set_state(ids[1], "discovered", 50.0)
    position, changes = index.evaluated_changes(position)
    assert changes == [] and index.latest_evaluated("a") == ids[0]
    record_evaluated(store, run, finished(ids[2]), at=51.0)
    store.queue.set_state(ids[1], "evaluated", 52.0)
    position, changes = index.evaluated_changes(position)
    assert sorted(changes or []) == sorted([("a", ids[2]), ("a", ids[1])])
    assert index.evaluated_ids() == {"a": [ids[1], ids[2], ids[0]]}
    assert index.evaluated_runs() == ["a"]
    # The log of checkpoint changes trimmed past this reader: it reloads and says it cannot tell.
    with store.db.transaction() as conn:
        conn.execute("UPDATE checkpoints SET state = 'skipped' WHERE id = ?", (ids[0],))
        conn.execute("DELETE FROM checkpoint_changes")
    _, changes = index.evaluated_changes(position)
    assert changes is None
    assert index.evaluated_ids() == {"a": [ids[1], ids[2]]}
