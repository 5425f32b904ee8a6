"""Discovery: ready marker, settling (with an injected clock), step order, mining metadata."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recallwatch.checkpoints import (
    checkpoint_step,
    fingerprint,
    read_mining_metadata,
    scan_run,
)
from recallwatch.errors import InputError
from tests.daemon.helpers import age


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
