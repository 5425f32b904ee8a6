"""Discovery: ready marker, settling (with an injected clock), step order, mining metadata;
deleted, unreadable and unrecordable checkpoints."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from recallwatch.daemon.discovery import (
    LISTING_MAX_AGE,
    RunListings,
    checkpoint_step,
    fingerprint,
    read_mining_metadata,
    scan_run,
)
from recallwatch.errors import InputError
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.helpers import Clock, Gate, daemon, make_config, poll_until_idle, states
from tests.helpers.processes import wait_for
from tests.helpers.runs import age, write_checkpoint


def make(
    run: Path, name: str, *, marker: bool = True, state: dict[str, object] | None = None
) -> Path:
    """A checkpoint directory with a weights file and, optionally, the ready marker."""
    ckpt = run / name
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"\0" * 16)
    if marker:
        (ckpt / "trainer_state.json").write_text(
            json.dumps({"global_step": 1} if state is None else state)
        )
    return ckpt


def scan(run: Path, now: float, settle: float = 30.0) -> dict[str, bool]:
    """Name -> complete, in scan order."""
    return {
        c.name: c.complete
        for c in scan_run(run, "checkpoint-*", "trainer_state.json", settle, now=now)
    }


def test_complete_needs_the_marker_and_settling(tmp_path: Path) -> None:
    make(tmp_path, "checkpoint-10")
    make(tmp_path, "checkpoint-20", marker=False)
    now = time.time()
    assert scan(tmp_path, now) == {"checkpoint-10": False, "checkpoint-20": False}
    assert scan(tmp_path, now + 31) == {"checkpoint-10": True, "checkpoint-20": False}
    # A file written into the checkpoint restarts the settling period.
    age(tmp_path, 100)
    (tmp_path / "checkpoint-10" / "optimizer.pt").write_bytes(b"x")
    assert scan(tmp_path, time.time() + 10) == {"checkpoint-10": False, "checkpoint-20": False}
    # Nested directories count too.
    age(tmp_path, 100)
    (tmp_path / "checkpoint-10" / "1_Pooling").mkdir()
    (tmp_path / "checkpoint-10" / "1_Pooling" / "config.json").write_text("{}")
    assert not scan(tmp_path, time.time() + 10)["checkpoint-10"]
    assert scan(tmp_path, time.time() + 31)["checkpoint-10"]


def test_future_modification_times_are_not_settled(tmp_path: Path) -> None:
    ckpt = make(tmp_path, "checkpoint-1")
    age(ckpt, -3600)  # written "in the future" by a host with a fast clock
    assert scan(tmp_path, time.time(), settle=30) == {"checkpoint-1": False}


def test_order_by_step_not_name(tmp_path: Path) -> None:
    for name in ("checkpoint-1000", "checkpoint-200", "checkpoint-30"):
        make(tmp_path, name)
    make(tmp_path, "checkpoint-final", state={"global_step": 5000})
    make(tmp_path, "checkpoint-mystery", state={})
    (tmp_path / "checkpoint-file").write_text("not a directory")
    make(tmp_path, ".checkpoint-tmp")
    found = scan_run(tmp_path, "checkpoint-*", "trainer_state.json", 0, now=time.time() + 1)
    assert [(c.name, c.step) for c in found] == [
        ("checkpoint-30", 30),
        ("checkpoint-200", 200),
        ("checkpoint-1000", 1000),
        ("checkpoint-final", 5000),
        ("checkpoint-mystery", None),
    ]


@pytest.mark.parametrize(
    ("name", "state", "step"),
    [
        ("checkpoint-500", None, 500),
        ("epoch-2-step-750", None, 750),
        ("best", '{"global_step": 42}', 42),
        ("best", '{"global_step": true}', None),
        ("best", "not json", None),
        ("best", None, None),
    ],
)
def test_checkpoint_step(tmp_path: Path, name: str, state: str | None, step: int | None) -> None:
    ckpt = tmp_path / name
    ckpt.mkdir()
    if state is not None:
        (ckpt / "trainer_state.json").write_text(state)
    assert checkpoint_step(ckpt) == step


def test_missing_run_directory_is_empty(tmp_path: Path) -> None:
    assert scan_run(tmp_path / "nope", "checkpoint-*", "x", 0, now=0) == []


def test_mining_metadata_checkpoint_first_then_run(tmp_path: Path) -> None:
    ckpt = make(tmp_path, "checkpoint-1")
    assert read_mining_metadata(ckpt, tmp_path, "mining.json") is None
    (tmp_path / "mining.json").write_text('{"range_min": 0, "teacher": "bge"}')
    run_level = read_mining_metadata(ckpt, tmp_path, "mining.json")
    assert run_level is not None and run_level.path == tmp_path / "mining.json"
    (ckpt / "mining.json").write_text('{"teacher": "bge", "range_min": 10}')
    own = read_mining_metadata(ckpt, tmp_path, "mining.json")
    assert own is not None and own.path == ckpt / "mining.json"
    assert own.content == {"teacher": "bge", "range_min": 10}
    assert own.fingerprint != run_level.fingerprint


def test_fingerprint_is_canonical_json(tmp_path: Path) -> None:
    ckpt = make(tmp_path, "checkpoint-1")
    (ckpt / "mining.yaml").write_text("teacher: bge\nrange_min: 0\nmargins: [0.1, 0.2]\n")
    (ckpt / "mining.json").write_text(
        '{\n  "margins": [0.1, 0.2],\n  "range_min": 0, "teacher": "bge"}'
    )
    from_yaml = read_mining_metadata(ckpt, tmp_path, "mining.yaml")
    from_json = read_mining_metadata(ckpt, tmp_path, "mining.json")
    assert from_yaml is not None and from_json is not None
    assert from_yaml.fingerprint == from_json.fingerprint
    assert from_json.canonical == '{"margins":[0.1,0.2],"range_min":0,"teacher":"bge"}'
    assert from_json.fingerprint == fingerprint(
        {"teacher": "bge", "range_min": 0, "margins": [0.1, 0.2]}
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("mining.json", "{not json", "not valid JSON or YAML"),
        ("mining.yaml", "when: 2024-01-01\n", "plain JSON data"),
    ],
)
def test_bad_mining_metadata(tmp_path: Path, name: str, text: str, message: str) -> None:
    ckpt = make(tmp_path, "checkpoint-1")
    (ckpt / name).write_text(text)
    with pytest.raises(InputError, match=message):
        read_mining_metadata(ckpt, tmp_path, name)


def test_half_written_and_unsettled_checkpoints_wait(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
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


def test_a_run_directory_is_listed_again_only_when_its_time_moves(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoint-1").mkdir(parents=True)
    now = [0.0]
    # ``settled=0``: a listing is reused as soon as it is taken (the default waits 2 s).
    listings = RunListings(clock=lambda: now[0], settled=0.0)
    assert [p.name for p in listings.dirs(run, "checkpoint-*")] == ["checkpoint-1"]
    # A new entry moves the directory's times: listed again at once.
    (run / "checkpoint-2").mkdir()
    assert len(listings.dirs(run, "checkpoint-*")) == 2
    # The modification time put back (a copy tool preserving times): the change time moved.
    (run / "checkpoint-3").mkdir()
    past = time.time() - 3600
    os.utime(run, (past, past))
    assert len(listings.dirs(run, "checkpoint-*")) == 3
    # Unchanged: the listing is reused, a stat and no listing ...
    cached = listings.dirs(run, "checkpoint-*")
    assert listings.dirs(run, "checkpoint-*") is cached
    # ... until the reuse limit, for file systems whose directory times lag.
    now[0] = LISTING_MAX_AGE
    assert listings.dirs(run, "checkpoint-*") is not cached
    # With the default, a directory changed just now is not reused (an entry added in the same
    # clock tick would not show).
    fresh = RunListings()
    (run / "checkpoint-4").mkdir()
    first = fresh.dirs(run, "checkpoint-*")
    assert len(first) == 4 and fresh.dirs(run, "checkpoint-*") is not first
    shutil.rmtree(run)
    assert listings.dirs(run, "checkpoint-*") == []
