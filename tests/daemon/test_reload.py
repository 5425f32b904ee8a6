"""What a reload applies: the new file's runs; every other changed section waits for a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recallwatch.config import Config, load_config
from recallwatch.daemon.reload import applicable
from tests.helpers.runs import config_doc, write_config


def config(tmp_path: Path, name: str, doc: dict[str, Any]) -> Config:
    """The config of ``doc``, written and loaded as ``serve`` would."""
    return load_config(write_config(tmp_path / name, doc))


def test_the_runs_are_applied_and_other_sections_named_for_a_restart(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, tmp_path / "heldout", tmp_path / "a")
    running = config(tmp_path, "old.yaml", doc)
    doc["runs"] = [{"name": "b", "directory": str(tmp_path / "b")}]
    doc["poll_interval_seconds"] = 7
    doc["evaluation"] = {**doc["evaluation"], "ks": [1, 5]}
    new = config(tmp_path, "new.yaml", doc)

    merged, changed = applicable(running, new)

    assert [r.name for r in merged.runs] == ["b"]
    assert merged.runs == new.runs
    assert changed == ("poll_interval_seconds", "evaluation")
    assert merged.poll_interval_seconds == running.poll_interval_seconds
    assert merged.evaluation == running.evaluation


def test_an_unchanged_file_changes_nothing(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, tmp_path / "heldout", tmp_path / "a")
    running = config(tmp_path, "rw.yaml", doc)
    merged, changed = applicable(running, config(tmp_path, "rw.yaml", doc))
    assert merged == running
    assert changed == ()
