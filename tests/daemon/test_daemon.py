"""The daemon in process: queue policies, deletion, idempotency, timeouts, shutdown, FN hook."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recallwatch.config import Config, parse_config
from recallwatch.daemon import Daemon
from recallwatch.runner import (
    FnJob,
    Job,
    Result,
    estimate_in_process,
    estimate_isolated,
    run_in_process,
    run_isolated,
)
from recallwatch.store import CheckpointRow, FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from tests.daemon.helpers import REPO, config_doc, wait_for, write_checkpoint

HOLD_ENCODER = "python:tests.daemon.encoders:encode"
isolated = functools.partial(run_isolated, env={**os.environ, "PYTHONPATH": str(REPO)})


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Gate:
    """A runner that blocks each evaluation until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.order: list[str] = []

    def __call__(self, job: Job, timeout: float, cancel: threading.Event) -> Result:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.order.append(Path(job.checkpoint).name)
        try:
            assert self.release.wait(30), "the test never released the gate"
            return run_in_process(job, timeout, cancel)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state" / "rw.db")
    yield s
    s.close()


def make_config(tmp_path: Path, synthetic: SyntheticSet, **sections: Any) -> Config:
    """A config over ``tmp_path/run`` (and any extra runs in ``sections``)."""
    return parse_config(config_doc(tmp_path, synthetic.path, tmp_path / "run", **sections))


def daemon(config: Config, store: Store, **kwargs: Any) -> Daemon:
    """A prepared daemon whose clock is well past every checkpoint's settling time."""
    kwargs.setdefault("runner", run_in_process)
    kwargs.setdefault("clock", Clock(1e10))
    d = Daemon(config, store, **kwargs)
    d.prepare()
    return d


def poll_until_idle(d: Daemon) -> None:
    d.poll()
    assert d.wait_idle(60)


def states(store: Store, run: str = "demo") -> dict[str, str]:
    return {c.name: c.state for c in store.queue.checkpoints(run)}


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


def test_half_written_and_unsettled_checkpoints_wait(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    import time

    run = tmp_path / "run"
    write_checkpoint(run, 1, synthetic, complete=False)
    write_checkpoint(run, 2, synthetic)
    clock = Clock(time.time())
    doc = {"runs": [{"name": "demo", "directory": str(run), "settle_seconds": 30}]}
    d = daemon(make_config(tmp_path, synthetic, **doc), store, clock=clock)
    poll_until_idle(d)
    assert states(store) == {}
    clock.now += 31
    poll_until_idle(d)
    assert states(store) == {"checkpoint-2": "evaluated"}


def test_deleted_before_evaluation_is_skipped(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    import shutil

    write_checkpoint(tmp_path / "run", 1, synthetic)
    gate = Gate()
    d = daemon(make_config(tmp_path, synthetic), store, runner=gate)
    d.poll()
    wait_for(lambda: gate.active == 1, what="the first evaluation")
    doomed = write_checkpoint(tmp_path / "run", 2, synthetic)
    d.poll()
    assert states(store)["checkpoint-2"] == "discovered"
    shutil.rmtree(doomed)  # the trainer's rotation
    d.poll()
    gate.release.set()
    assert d.wait_idle(30)
    row = store.queue.checkpoint("demo", "checkpoint-2")
    assert row is not None and (row.state, row.state_reason) == ("skipped", "deleted")
    assert store.views.failures_by_run() == {}


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
    assert [sorted(e.metrics["recall"]) for e in current] == [["1", "5"]]
    assert len(store.results.evaluations(row.id)) == 2


def test_a_timeout_is_a_counted_failure_and_the_next_checkpoint_runs(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    slow = write_checkpoint(tmp_path / "run", 1, synthetic)
    (slow / "hold").write_text("")
    write_checkpoint(tmp_path / "run", 2, synthetic)
    config = make_config(
        tmp_path, synthetic, evaluation={"encoder": HOLD_ENCODER, "timeout_seconds": 1.5}
    )
    poll_until_idle(daemon(config, store, runner=isolated))
    assert states(store) == {"checkpoint-1": "failed", "checkpoint-2": "evaluated"}
    assert store.views.failures_by_run() == {("demo", "timeout"): 1}


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


def test_unreadable_mining_metadata_does_not_block_evaluation(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    ckpt = write_checkpoint(tmp_path / "run", 1, synthetic, complete=False)
    (ckpt / "mining.json").write_text("{broken")
    write_checkpoint(tmp_path / "run", 1, synthetic)
    poll_until_idle(daemon(make_config(tmp_path, synthetic), store))
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and row.state == "evaluated"
    assert row.mining_fingerprint is None and "not valid JSON" in (row.mining_error or "")


def fn_section(run: Path, **extra: Any) -> dict[str, Any]:
    """A false_negatives section auditing with the simulated set's dense qrels."""
    return {"corpus": str(run / "corpus"), "oracles": [f"qrels:{run / 'audit.tsv'}"], **extra}


def test_each_new_mined_set_is_audited_once_and_exported(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    run = tmp_path / "run"
    truth = simulate_mined_set(num_queries=300, negatives_per_query=20, num_docs=4000, seed=1)
    truth.write(run)  # run/corpus, run/mined.jsonl, run/audit.tsv
    mining = {"mined_set": "mined.jsonl", "range_min": 0}
    for step in (1, 2):
        write_checkpoint(run, step, synthetic, mining=mining)
    write_checkpoint(run, 3, synthetic, mining={"range_min": 0})  # names no mined set
    jobs: list[FnJob] = []

    def audit(job: FnJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        jobs.append(job)
        return estimate_isolated(job, timeout, cancel)

    config = make_config(
        tmp_path, synthetic, false_negatives=fn_section(run, sample_size=400, seed=3)
    )
    poll_until_idle(daemon(config, store, fn_runner=audit))
    assert len(jobs) == 1 and jobs[0].mined_set == str(run / "mined.jsonl")
    ids = {c.name: c.id for c in store.queue.checkpoints("demo")}
    est = store.results.fn_estimate(ids["checkpoint-2"])
    assert est is not None and est == store.results.fn_estimate(ids["checkpoint-1"])
    assert store.results.fn_estimate(ids["checkpoint-3"]) is None
    assert est.lower <= truth.true_rate <= est.upper
    assert est.sample_size == 400 and est.oracle.startswith("qrels:")
    assert [b.rank_bucket for b in est.buckets][:3] == ["1", "2-3", "4-10"]
    assert est.amplification is not None and est.amplification > 1
    assert "recommendation" in est.details
    assert store.views.stage_histograms([1e9])["false_negatives"][1] == 1
    assert set(states(store).values()) == {"evaluated"}


def test_a_failing_audit_is_logged_and_the_checkpoint_still_evaluated(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    write_checkpoint(run, 1, synthetic, mining={"mined_set": "missing.jsonl"})
    (run / "corpus").mkdir()
    (run / "corpus" / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    config = make_config(tmp_path, synthetic, false_negatives=fn_section(run))
    with caplog.at_level(logging.INFO, logger="recallwatch.daemon"):
        poll_until_idle(daemon(config, store, fn_runner=estimate_in_process))
    assert "false-negative estimate failed" in caplog.text and "mined set not found" in caplog.text
    assert states(store) == {"checkpoint-1": "evaluated"}


def test_without_a_false_negatives_section_nothing_is_audited(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    write_checkpoint(tmp_path / "run", 1, synthetic, mining={"mined_set": "m.jsonl"})

    def audit(job: FnJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        raise AssertionError("not configured: never called")

    with caplog.at_level(logging.INFO, logger="recallwatch.daemon"):
        poll_until_idle(daemon(make_config(tmp_path, synthetic), store, fn_runner=audit))
    assert "false-negative estimation is off" in caplog.text
    assert states(store) == {"checkpoint-1": "evaluated"}


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


def test_a_checkpoint_that_cannot_be_recorded_stops_neither_its_run_nor_the_others(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # Run "a" holds a checkpoint whose name is not UTF-8 (a real directory name on Linux,
    # which the store cannot record) before a good one; run "b" is configured after it.
    bad = write_checkpoint(tmp_path / "a", 1, synthetic)
    os.rename(bytes(bad), bytes(tmp_path / "a") + b"/checkpoint-\xff")
    write_checkpoint(tmp_path / "a", 2, synthetic)
    write_checkpoint(tmp_path / "b", 1, synthetic)
    runs = [{"name": r, "directory": str(tmp_path / r), "settle_seconds": 0} for r in ("a", "b")]
    d = daemon(make_config(tmp_path, synthetic, runs=runs), store)
    with caplog.at_level(logging.WARNING, logger="recallwatch.daemon"):
        poll_until_idle(d)
        d.poll()  # polled again: the bad one is retried, but warned about only once
    assert states(store, "a") == {"checkpoint-2": "evaluated"}
    assert states(store, "b") == {"checkpoint-1": "evaluated"}
    warned = [r for r in caplog.records if "cannot record checkpoint" in r.getMessage()]
    assert len(warned) == 1 and getattr(warned[0], "fields", {}).get("run") == "a"
    assert "UnicodeEncodeError" in (d.last_poll_error or "")
    assert (d.last_poll_error or "").startswith("run a: 'checkpoint-")
