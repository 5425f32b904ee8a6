"""The views of the runs (``views/runs.py``) over a real store."""

from __future__ import annotations

from recallwatch.store import CheckpointRow, Store
from recallwatch.views.runs import mining_changes, run_history


def row(name: str, step: int | None, fingerprint: str | None) -> CheckpointRow:
    return CheckpointRow(
        1, "r", name, "/p", step, "evaluated", "k", fingerprint, None, 0.0, 0.0, 0.0, None, None,
        0, False,
    )  # fmt: skip


def test_mining_changes_are_where_the_fingerprint_differs_in_step_order() -> None:
    rows = [
        row("c300", 300, "b"),
        row("c100", 100, "a"),
        row("c200", 200, None),  # no metadata: skipped, not a change
        row("cx", None, "c"),  # no step: skipped
        row("c400", 400, "b"),
        row("c500", 500, "a"),
    ]
    assert mining_changes(rows) == [(300, "c300"), (500, "c500")]
    assert mining_changes([row("c1", 1, "a"), row("c2", 2, "a")]) == []


def test_run_history_reads_the_current_evaluations_in_step_order(small_store: Store) -> None:
    history = run_history(small_store, "demo")
    assert [p.checkpoint.step for p in history.points] == [100, 200, 300]
    assert [p.metrics["synth"]["recall"][1] for p in history.points] == [0.5, 0.6, 0.7]
    assert history.columns == [
        ("synth", "ndcg", 10),
        ("synth", "recall", 1),
        ("synth", "recall", 10),
    ]
    assert history.mining_changes == [] and history.alerts == []
    assert history.datasets == ["synth"]
