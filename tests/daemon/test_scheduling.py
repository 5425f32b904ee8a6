"""The evaluation queue: oldest first, round-robin across runs, latest_only, bounded slots."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from recallwatch.daemon.scheduling import next_checkpoints
from recallwatch.store import CheckpointRow, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.helpers import Clock, Gate, daemon, make_config, poll_until_idle, states
from tests.helpers.processes import wait_for
from tests.helpers.runs import write_checkpoint


def test_backfill_evaluates_everything_oldest_first(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    for step in (300, 20, 1000):
        write_checkpoint(tmp_path / "run", step, synthetic)
    gate = Gate()
    gate.release.set()
    d = daemon(make_config(tmp_path, synthetic), store, runner=gate)
    poll_until_idle(d)
    assert gate.order == ["checkpoint-20", "checkpoint-300", "checkpoint-1000"]
    assert set(states(store).values()) == {"evaluated"}


def test_latest_only_skips_older_queued_checkpoints(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    for step in (1, 2, 3):
        write_checkpoint(tmp_path / "run", step, synthetic)
    config = make_config(tmp_path, synthetic, evaluation={"policy": "latest_only"})
    poll_until_idle(daemon(config, store))
    assert states(store) == {
        "checkpoint-1": "skipped",
        "checkpoint-2": "skipped",
        "checkpoint-3": "evaluated",
    }
    assert store.queue.checkpoint("demo", "checkpoint-1").state_reason == "superseded"  # type: ignore[union-attr]


def test_concurrency_is_bounded_and_runs_take_turns(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    for run in ("a", "b"):
        for step in (1, 2, 3):
            write_checkpoint(tmp_path / run, step, synthetic)
    runs = [{"name": r, "directory": str(tmp_path / r), "settle_seconds": 0} for r in ("a", "b")]
    config = make_config(tmp_path, synthetic, runs=runs, evaluation={"concurrency": 2})
    gate = Gate()
    d = daemon(config, store, runner=gate)
    d.poll()
    wait_for(lambda: gate.active == 2, what="two evaluations")
    d.poll()  # a poll while both slots are busy starts nothing more
    assert gate.active == 2
    gate.release.set()
    assert d.wait_idle(60)
    assert gate.most == 2
    assert len(gate.order) == 6
    # Round-robin across runs, oldest first within each.
    assert gate.order[:2] == ["checkpoint-1", "checkpoint-1"]
    assert [states(store, r) for r in ("a", "b")] == [
        dict.fromkeys(("checkpoint-1", "checkpoint-2", "checkpoint-3"), "evaluated")
    ] * 2


class Queue:
    """The store's queue as ``next_checkpoints`` uses it: queued rows, and the skips it makes."""

    def __init__(self, rows: list[CheckpointRow]) -> None:
        self.rows = rows
        self.skipped: list[tuple[str, str]] = []

    def checkpoints(self, run: str, states: list[str]) -> list[CheckpointRow]:
        return [r for r in self.rows if r.run == run and r.state in states]

    def set_state(self, checkpoint_id: int, state: str, now: float, **kw: Any) -> bool:
        name = next(r.name for r in self.rows if r.id == checkpoint_id)
        self.skipped.append((name, kw["reason"]))
        return True

    def checkpoint_states(self) -> dict[str, tuple[tuple[int, int], dict[str, int]]]:
        """``ReadViews.checkpoint_states`` of these rows (the store's views, as used here)."""
        out: dict[str, tuple[tuple[int, int], dict[str, int]]] = {}
        for r in self.rows:
            counts = out.setdefault(r.run, ((0, 0), {}))[1]
            counts[r.state] = counts.get(r.state, 0) + 1
        return out


def queued(run: str, step: int, *, audit_only: bool = False) -> CheckpointRow:
    """A ``discovered`` checkpoint of ``run`` (ids follow the runs and steps)."""
    return CheckpointRow(
        id=1000 * ord(run[0]) + step,
        run=run,
        name=f"checkpoint-{step}",
        path=f"/runs/{run}/checkpoint-{step}",
        step=step,
        state="discovered",
        eval_key="k",
        mining_fingerprint=None,
        mining_error=None,
        completed_at=0.0,
        discovered_at=0.0,
        updated_at=0.0,
        state_reason=None,
        state_message=None,
        attempts=0,
        audit_only=audit_only,
    )


def pick(
    tmp_path: Path,
    synthetic: SyntheticSet,
    rows: list[CheckpointRow],
    slots: int,
    *,
    running: tuple[int, ...] = (),
    policy: str = "oldest_first",
) -> tuple[list[str], list[tuple[str, str]]]:
    """(run/name of the chosen checkpoints, the skips made) for runs a and b."""
    runs = [{"name": r, "directory": str(tmp_path / r)} for r in ("a", "b")]
    config = make_config(tmp_path, synthetic, runs=runs, evaluation={"policy": policy})
    queue = Queue(rows)
    chosen = next_checkpoints(
        config,
        cast(Store, SimpleNamespace(queue=queue, views=queue)),
        slots,
        running=running,
        clock=Clock(0),
    )
    return [f"{r.run}/{r.name}" for r in chosen], queue.skipped


def test_round_robin_takes_the_oldest_of_each_run_in_turn(
    tmp_path: Path, synthetic: SyntheticSet
) -> None:
    rows = [queued("a", 1), queued("a", 2), queued("a", 3), queued("b", 7)]
    assert pick(tmp_path, synthetic, rows, 3) == (
        ["a/checkpoint-1", "b/checkpoint-7", "a/checkpoint-2"],
        [],
    )
    # A running checkpoint is not chosen again; no free slot chooses nothing.
    running = (rows[0].id,)
    assert pick(tmp_path, synthetic, rows, 1, running=running)[0] == ["a/checkpoint-2"]
    assert pick(tmp_path, synthetic, rows, 0) == ([], [])


def test_latest_only_never_supersedes_an_audit_retry(
    tmp_path: Path, synthetic: SyntheticSet
) -> None:
    rows = [queued("a", 1, audit_only=True), queued("a", 2), queued("a", 3), queued("b", 4)]
    chosen, skipped = pick(tmp_path, synthetic, rows, 4, policy="latest_only")
    assert chosen == ["a/checkpoint-1", "b/checkpoint-4", "a/checkpoint-3"]
    assert skipped == [("checkpoint-2", "superseded")]
