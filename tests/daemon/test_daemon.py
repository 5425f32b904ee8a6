"""The daemon in process: idempotency, timeouts, crashes, shutdown, readiness, the hook."""

from __future__ import annotations

import threading
from pathlib import Path

from recallwatch.daemon import Daemon
from recallwatch.daemon.runner import Job, Result, run_in_process
from recallwatch.store import CheckpointRow, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.helpers import (
    HOLD_ENCODER,
    Clock,
    Gate,
    daemon,
    isolated,
    make_config,
    poll_until_idle,
    states,
)
from tests.helpers.processes import wait_for
from tests.helpers.runs import write_checkpoint


def test_never_twice_under_the_same_key_again_after_a_config_change(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    write_checkpoint(tmp_path / "run", 1, synthetic)
    gate = Gate()
    gate.release.set()
    d = daemon(make_config(tmp_path, synthetic), store, runner=gate)
    poll_until_idle(d)
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None
    d.evaluate_checkpoint(row)  # e.g. a duplicate dispatch: the stored result is reused
    poll_until_idle(daemon(make_config(tmp_path, synthetic), store, runner=gate))
    assert len(gate.order) == 1
    assert len(store.results.evaluations(row.id)) == 1

    changed = make_config(tmp_path, synthetic, evaluation={"ks": [1, 5]})
    poll_until_idle(daemon(changed, store, runner=gate))
    assert len(gate.order) == 2
    current = store.results.current_evaluations(row.id)
    assert [sorted(e.metrics["recall"]) for e in current] == [[1, 5]]
    assert len(store.results.evaluations(row.id)) == 2


def test_a_timeout_is_a_counted_failure_and_the_next_checkpoint_runs(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    slow = write_checkpoint(tmp_path / "run", 1, synthetic)
    (slow / "hold").write_text("")  # held until the test ends: only the timeout stops it
    write_checkpoint(tmp_path / "run", 2, synthetic)
    config = make_config(
        tmp_path, synthetic, evaluation={"encoder": HOLD_ENCODER, "timeout_seconds": 1.5}
    )
    given: list[float] = []

    def runner(job: Job, timeout: float, cancel: threading.Event) -> Result:
        # The held evaluation gets the configured timeout; the second one a limit no busy
        # machine reaches, so that it cannot time out as well however slow its process starts.
        given.append(timeout)
        held = (Path(job.checkpoint) / "hold").exists()
        return isolated(job, timeout if held else 600.0, cancel)

    poll_until_idle(daemon(config, store, runner=runner))
    assert given == [1.5, 1.5]  # the daemon passes the configured timeout to each evaluation
    assert states(store) == {"checkpoint-1": "failed", "checkpoint-2": "evaluated"}
    assert store.views.failures_by_run() == {("demo", "timeout"): 1}
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and row.state_reason == "timeout"


def test_a_crashing_evaluation_process_is_a_counted_failure(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    ckpt = write_checkpoint(tmp_path / "run", 1, synthetic)
    (ckpt / "crash").write_text("")
    config = make_config(tmp_path, synthetic, evaluation={"encoder": HOLD_ENCODER})
    poll_until_idle(daemon(config, store, runner=isolated))
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and (row.state, row.state_reason) == ("failed", "crashed")
    assert row.state_message == "the evaluation process exited with 9"


def test_shutdown_past_the_grace_period_requeues_the_running_evaluation(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    ckpt = write_checkpoint(tmp_path / "run", 1, synthetic)
    (ckpt / "hold").write_text("")
    config = make_config(tmp_path, synthetic, evaluation={"encoder": HOLD_ENCODER})
    d = daemon(config, store, runner=isolated)
    d.poll()
    wait_for((ckpt / "started").exists, what="the evaluation to start")
    d.stop(grace_seconds=0.2)
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and (row.state, row.state_reason) == ("discovered", "interrupted")
    assert store.results.evaluations(row.id) == []


def test_shutdown_lets_a_running_evaluation_finish_within_the_grace_period(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    write_checkpoint(tmp_path / "run", 1, synthetic)
    write_checkpoint(tmp_path / "run", 2, synthetic)
    gate = Gate()
    d = daemon(make_config(tmp_path, synthetic), store, runner=gate)
    d.poll()
    wait_for(lambda: gate.active == 1, what="the first evaluation")
    stopper = threading.Thread(target=d.stop, kwargs={"grace_seconds": 30})
    stopper.start()
    wait_for(lambda: d._stopping, what="the stop to begin")
    gate.release.set()
    stopper.join(30)
    # The running one finished; the queued one waits for the next start.
    assert states(store) == {"checkpoint-1": "evaluated", "checkpoint-2": "discovered"}


def test_readiness_needs_a_recent_poll_and_the_scheduler(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d = Daemon(make_config(tmp_path, synthetic), store, runner=run_in_process)
    assert not d.readiness()["ready"]
    d.start()
    try:
        ready = wait_for(lambda: d.readiness()["ready"], what="ready")
        assert ready
    finally:
        d.stop()
    assert d.readiness()["checks"]["scheduler"] is False


def test_a_dead_scheduler_thread_is_not_running(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    d = Daemon(make_config(tmp_path, synthetic), store, runner=run_in_process)
    d.start()
    try:
        assert wait_for(lambda: d.scheduler_running, what="the scheduler")
        scheduler = d._scheduler
        assert scheduler is not None and scheduler.running
        alive = scheduler._thread
        dead = threading.Thread(target=lambda: None)  # stands in for a thread that died
        dead.start()
        dead.join()
        scheduler._thread = dead
        assert scheduler.running and not d.scheduler_running  # APScheduler alone would say yes
        assert d.readiness()["checks"]["scheduler"] is False
        scheduler._thread = alive
    finally:
        d.stop()


def test_retry_failed_requeues_failed_checkpoints(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    import shutil

    ckpt = write_checkpoint(tmp_path / "run", 1, synthetic)
    saved = tmp_path / "saved"
    shutil.move(ckpt / "eval_embeddings", saved)
    poll_until_idle(daemon(make_config(tmp_path, synthetic), store))
    assert states(store) == {"checkpoint-1": "failed"}
    shutil.move(saved, ckpt / "eval_embeddings")  # the operator fixes the checkpoint
    poll_until_idle(daemon(make_config(tmp_path, synthetic), store))
    assert states(store) == {"checkpoint-1": "failed"}  # not retried by itself
    d = Daemon(make_config(tmp_path, synthetic), store, runner=run_in_process, clock=Clock(1e10))
    d.prepare(retry_failed=True)
    poll_until_idle(d)
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and row.state == "evaluated"
    assert [e.status for e in store.results.evaluations(row.id)] == ["failed", "done"]


def test_the_after_evaluation_hook_sees_final_states_and_cannot_break_the_daemon(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    import shutil

    write_checkpoint(tmp_path / "run", 1, synthetic)
    bad = write_checkpoint(tmp_path / "run", 2, synthetic)
    shutil.rmtree(bad / "eval_embeddings")
    write_checkpoint(tmp_path / "run", 3, synthetic)
    seen: list[tuple[str, str]] = []

    def hook(row: CheckpointRow) -> None:
        seen.append((row.name, row.state))
        raise RuntimeError("a broken decision must not stop evaluations")

    poll_until_idle(daemon(make_config(tmp_path, synthetic), store, on_checkpoint=hook))
    assert seen == [
        ("checkpoint-1", "evaluated"),
        ("checkpoint-2", "failed"),
        ("checkpoint-3", "evaluated"),
    ]
