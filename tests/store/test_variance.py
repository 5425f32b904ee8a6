"""store/variance.py: comparable evaluations of other runs, for the checkpoint-variance history."""

from __future__ import annotations

from dataclasses import replace

from recallwatch.store import Store
from tests.helpers.seed import add, finished


def _evaluated(
    store: Store,
    run_id: int,
    step: int,
    *,
    fp: str | None = "A",
    config_hash: str = "k1",
    precision: str | None = None,
    at: float = 12.0,
) -> int:
    """A checkpoint of ``run_id`` evaluated on "synth" (finished at ``at``) and ``evaluated``."""
    cid = add(store, run_id, step, fp=fp)
    ev = replace(
        finished(cid, config_hash=config_hash), precision=precision, started_at=at, finished_at=at
    )
    store.results.record_evaluation(ev, run_id)
    store.queue.set_state(cid, "evaluated", at)
    return cid


def test_past_evaluations_are_other_runs_comparable_evaluations_in_step_order(
    store: Store,
) -> None:
    mine = store.queue.ensure_run("mine", "/runs/mine", 1.0)
    old = store.queue.ensure_run("old", "/runs/old", 1.0)
    new = store.queue.ensure_run("new", "/runs/new", 1.0)
    other = store.queue.ensure_run("other", "/runs/other", 1.0)
    _evaluated(store, mine, 100)  # the run itself: never its own history
    old_ids = [_evaluated(store, old, s, at=20.0 + s / 100) for s in (300, 100, 200)]
    _evaluated(store, old, 400, fp=None)  # no mining metadata: no segment
    _evaluated(store, old, 500, config_hash="k2")  # another evaluation key
    _evaluated(store, old, 600, precision="bf16")  # another precision
    pending = add(store, old, 700, fp="A")  # discovered, not evaluated
    new_ids = [_evaluated(store, new, s, fp="B", at=50.0) for s in (100, 200)]
    _evaluated(store, other, 100, at=5.0)
    past = store.variance.past_evaluations(
        dataset="synth", config_hash="k1", precision=None, exclude_run="mine", max_runs=2
    )
    # The two runs with the latest comparable evaluations, newest first, each in step order.
    assert [(p.run, p.checkpoint) for p in past] == [
        ("new", "checkpoint-100"),
        ("new", "checkpoint-200"),
        ("old", "checkpoint-100"),
        ("old", "checkpoint-200"),
        ("old", "checkpoint-300"),
    ]
    assert [p.checkpoint_id for p in past] == [*new_ids, old_ids[1], old_ids[2], old_ids[0]]
    assert all(p.checkpoint_id != pending for p in past)
    assert {p.mining_fingerprint for p in past} == {"A", "B"}
    evaluation = store.results.current_evaluations(past[0].checkpoint_id)[0]
    assert past[0].evaluation_id == evaluation.id
    # Three runs when allowed; precision is matched exactly (NULL to NULL, bf16 to bf16).
    everything = store.variance.past_evaluations(
        dataset="synth", config_hash="k1", precision=None, exclude_run="mine", max_runs=10
    )
    assert [p.run for p in everything][-1] == "other"
    bf16 = store.variance.past_evaluations(
        dataset="synth", config_hash="k1", precision="bf16", exclude_run="mine", max_runs=10
    )
    assert [(p.run, p.checkpoint) for p in bf16] == [("old", "checkpoint-600")]
    assert (
        store.variance.past_evaluations(
            dataset="other", config_hash="k1", precision=None, exclude_run="x", max_runs=10
        )
        == []
    )
    assert (
        store.variance.past_evaluations(
            dataset="synth", config_hash="k1", precision=None, exclude_run="x", max_runs=0
        )
        == []
    )
