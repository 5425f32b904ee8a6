"""The review label mirror read back at start: labels lost with a deleted ``-wal`` come back."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from recallwatch.config import parse_config
from recallwatch.store import Store
from recallwatch.store.maintenance import review_mirror
from recallwatch.web.review_mirror import restore_mirrored_labels
from recallwatch.web.review_sets import daemon_review

#: (query, document, label, reviewer, time) of the labels written after the last checkpoint.
LATE = [
    ("q2", "d2", "not_relevant", "ann", 200.0),
    ("q1", "d1", "unsure", "=bob", 300.0),  # a formula-like name, neutralised in the CSV
    ("q1", "d1", "not_relevant", "ann", 400.0),  # ann changes her mind: replaces her first label
]


def labels(store: Store) -> set[tuple[str, str, str, str, float]]:
    """Every stored label of the set ``fp`` as (query, document, label, reviewer, time)."""
    return {
        (r.query_id, r.doc_id, r.label, r.reviewer, r.labelled_at)
        for r in store.reviews.labels("fp")
    }


def test_labels_lost_with_a_deleted_wal_are_restored_from_the_mirror(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(
        {
            "heldout": [{"name": "h", "path": str(tmp_path)}],
            "runs": [{"name": "r", "directory": "/x"}],
        }
    )
    first = tmp_path / "before" / "rw.db"
    first.parent.mkdir()
    store = Store.open(first)
    sets = daemon_review(store, config)
    assert sets.settings.on_change is not None
    store.reviews.record("fp", "q1", "d1", "relevant", "ann", 100.0)
    sets.settings.on_change("fp")  # as the review page does after each label
    store.close()  # checkpointed: the main file holds the first label
    store = Store.open(first)
    sets = daemon_review(store, config)  # a restart, nothing lost: nothing to restore
    assert sets.settings.on_change is not None
    for query, doc, label, reviewer, at in LATE:
        store.reviews.record("fp", query, doc, label, reviewer, at)
        sets.settings.on_change("fp")
    written = labels(store)
    # The crash: the main file without its -wal (the late labels are only in the log) + the mirror.
    crashed = tmp_path / "after" / "rw.db"
    crashed.parent.mkdir()
    shutil.copyfile(first, crashed)
    shutil.copytree(review_mirror(first), review_mirror(crashed))
    store.close()
    lost = Store.open(crashed)
    assert labels(lost) == {("q1", "d1", "relevant", "ann", 100.0)}
    with caplog.at_level(logging.WARNING, logger="recallwatch.web.review_mirror"):
        daemon_review(lost, config)  # at start
    assert labels(lost) == written
    (line,) = [r for r in caplog.records if "restored" in r.getMessage()]
    assert line.getMessage().startswith("restored 3 review label(s) from the mirror")
    assert line.__dict__["fields"]["file"] == str(review_mirror(crashed) / "fp.csv")
    assert restore_mirrored_labels(lost, review_mirror(crashed)) == {}  # nothing twice
    lost.close()


def test_a_damaged_mirror_file_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "rw.db")
    folder = review_mirror(store.path)
    folder.mkdir()
    (folder / "fp.csv").write_text("query_id,doc_id,label\nq1,d1,maybe\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="recallwatch.web.review_mirror"):
        assert restore_mirrored_labels(store, folder) == {}
    assert any("fp.csv" in str(r.__dict__.get("fields")) for r in caplog.records)
    assert labels(store) == set()
    store.close()
