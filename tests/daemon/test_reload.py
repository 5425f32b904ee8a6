"""What a reload applies: the runs, notifications and poll interval; every other changed section
waits for a restart (and is named as needing one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recallwatch.config import Config, load_config
from recallwatch.daemon.reload import applicable
from tests.helpers.runs import config_doc, write_config


def config(tmp_path: Path, name: str, doc: dict[str, Any]) -> Config:
    """The config of ``doc``, written and loaded as ``serve`` would."""
    return load_config(write_config(tmp_path / name, doc))


RULE = {"name": "floor", "type": "recall_floor", "floor": 0.5, "channels": ["am"]}
CHANNEL = {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9/"}


def test_live_sections_are_applied_and_other_sections_named_for_a_restart(
    tmp_path: Path,
) -> None:
    doc = config_doc(tmp_path, tmp_path / "heldout", tmp_path / "a")
    doc["notifications"] = {"channels": [CHANNEL], "rules": [RULE]}
    running = config(tmp_path, "old.yaml", doc)
    doc["runs"] = [{"name": "b", "directory": str(tmp_path / "b")}]
    doc["poll_interval_seconds"] = 7
    doc["evaluation"] = {**doc["evaluation"], "ks": [1, 5, 10]}
    doc["notifications"] = {"channels": [CHANNEL], "rules": [{**RULE, "floor": 0.8}]}
    doc["http"] = {"listen": "127.0.0.1:9"}
    new = config(tmp_path, "new.yaml", doc)

    merged, applied, restart = applicable(running, new)

    assert [r.name for r in merged.runs] == ["b"]
    assert merged.runs == new.runs
    assert applied == ("poll_interval_seconds", "runs", "notifications")
    assert merged.poll_interval_seconds == 7
    assert merged.notifications.rules[0].floor == 0.8  # type: ignore[union-attr]
    assert restart == ("http", "evaluation")
    assert merged.evaluation == running.evaluation
    assert merged.http == running.http


def test_the_first_rules_need_a_restart_without_an_alerting_side(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, tmp_path / "heldout", tmp_path / "a")
    running = config(tmp_path, "old.yaml", doc)
    doc["notifications"] = {"channels": [CHANNEL], "rules": [RULE]}
    new = config(tmp_path, "new.yaml", doc)
    merged, applied, restart = applicable(running, new, alerting=False)
    assert (applied, restart) == ((), ("notifications",))
    assert merged == running


def test_an_unchanged_file_changes_nothing(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, tmp_path / "heldout", tmp_path / "a")
    running = config(tmp_path, "rw.yaml", doc)
    merged, applied, restart = applicable(running, config(tmp_path, "rw.yaml", doc))
    assert merged == running
    assert applied == restart == ()
