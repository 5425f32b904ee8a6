"""The review label mirror reconciled with the store at start, the newest event winning: labels
and undos lost with a deleted ``-wal`` come back; a mirror behind the store is rewritten."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from recallwatch.config import parse_config
from recallwatch.store import Store
from recallwatch.store.maintenance import review_mirror
from recallwatch.web.review_mirror import reconcile_mirror, removals_path, write_mirror
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
    again = reconcile_mirror(lost, review_mirror(crashed))  # nothing twice
    assert (again.restored, again.undone, again.rewritten) == ({}, {}, [])
    lost.close()


def test_a_damaged_mirror_file_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "rw.db")
    folder = review_mirror(store.path)
    folder.mkdir()
    (folder / "fp.csv").write_text("query_id,doc_id,label\nq1,d1,maybe\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="recallwatch.web.review_mirror"):
        assert reconcile_mirror(store, folder).restored == {}
    assert any("fp.csv" in str(r.__dict__.get("fields")) for r in caplog.records)
    assert labels(store) == set()
    store.close()


def crash(first: Path, tmp_path: Path) -> Path:
    """The store's main file without its ``-wal``, and the review mirror, copied elsewhere."""
    crashed = tmp_path / "after" / "rw.db"
    crashed.parent.mkdir()
    shutil.copyfile(first, crashed)
    shutil.copytree(review_mirror(first), review_mirror(crashed))
    return crashed


def test_an_undo_lost_with_a_deleted_wal_is_applied_again_the_newest_event_winning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = tmp_path / "before" / "rw.db"
    first.parent.mkdir()
    store = Store.open(first)
    folder = review_mirror(first)
    store.reviews.record("fp", "q1", "d1", "relevant", "ann", 100.0)
    store.reviews.record("fp", "q2", "d2", "relevant", "ann", 110.0)
    write_mirror(store, folder, "fp")
    store.close()  # checkpointed: both labels are in the main file
    store = Store.open(first)
    # ann takes q1 back (the page's undo at 200), then labels q2 again at 300: only in the -wal.
    assert store.reviews.remove("fp", "q1", "d1", "ann", 200.0)
    write_mirror(store, folder, "fp")
    store.reviews.record("fp", "q2", "d2", "not_relevant", "ann", 300.0)
    write_mirror(store, folder, "fp")
    assert removals_path(folder, "fp").read_text().count("\n") == 1
    crashed = crash(first, tmp_path)
    store.close()
    lost = Store.open(crashed)
    assert {(r.query_id, r.label) for r in lost.reviews.labels("fp")} == {
        ("q1", "relevant"),
        ("q2", "relevant"),
    }
    with caplog.at_level(logging.WARNING, logger="recallwatch.web.review_mirror"):
        done = reconcile_mirror(lost, review_mirror(crashed))
    path = review_mirror(crashed) / "fp.csv"
    assert (done.restored, done.undone, done.rewritten) == ({path: 1}, {path: 1}, [])
    assert labels(lost) == {("q2", "d2", "not_relevant", "ann", 300.0)}
    assert [(r.query_id, r.removed_at) for r in lost.reviews.removals("fp")] == [("q1", 200.0)]
    (line,) = [r for r in caplog.records if r.getMessage().startswith("removed 1 review label")]
    assert "the newest event wins" in line.getMessage()
    again = reconcile_mirror(lost, review_mirror(crashed))
    assert (again.restored, again.undone, again.rewritten) == ({}, {}, [])
    lost.close()


def test_a_mirror_behind_the_store_is_rewritten_and_a_stored_undo_not_reverted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "rw.db")
    folder = review_mirror(store.path)
    store.reviews.record("fp", "q1", "d1", "relevant", "ann", 100.0)
    write_mirror(store, folder, "fp")
    # The daemon stopped after each commit, before the mirror's rewrite: an undo, a new label.
    store.reviews.remove("fp", "q1", "d1", "ann", 200.0)
    store.reviews.record("fp", "q3", "d3", "unsure", "bob", 250.0)
    with caplog.at_level(logging.WARNING, logger="recallwatch.web.review_mirror"):
        done = reconcile_mirror(store, folder)
    assert (done.restored, done.undone, done.rewritten) == ({}, {}, ["fp"])
    assert labels(store) == {("q3", "d3", "unsure", "bob", 250.0)}  # q1's undo stands
    assert any("mirror was behind the store" in r.getMessage() for r in caplog.records)
    text = (folder / "fp.csv").read_text()
    assert "q3" in text and "q1" not in text
    assert '"removed_at": 200.0' in removals_path(folder, "fp").read_text()
    store.close()
