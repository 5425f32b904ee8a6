"""``store/reviews.py``: review labels per mined set, one per reviewer and pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from recallwatch.store import MIGRATIONS, ReviewRow, Store


def test_labels_replace_per_reviewer_and_undo_removes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    assert store.schema_version == len(MIGRATIONS)
    store.reviews.record("set1", "q1", "d1", "relevant", "ann", 1.0)
    store.reviews.record("set1", "q1", "d1", "not_relevant", "bob", 2.0)
    store.reviews.record("set1", "q1", "d1", "unsure", "ann", 3.0)  # ann changes her mind
    store.reviews.record("set2", "q1", "d1", "relevant", "ann", 4.0)
    rows = store.reviews.labels("set1")
    assert [(r.reviewer, r.label, r.labelled_at) for r in rows] == [
        ("bob", "not_relevant", 2.0),
        ("ann", "unsure", 3.0),
    ]
    assert store.reviews.remove("set1", "q1", "d1", "ann")
    assert not store.reviews.remove("set1", "q1", "d1", "ann")
    assert [r.reviewer for r in store.reviews.labels("set1")] == ["bob"]
    sets = {s.mined_set: s for s in store.reviews.sets()}
    assert sets["set1"].labels == 1 and sets["set2"].reviewers == 1
    store.close()
    # Labels persist across opening the store again.
    again = Store.open(tmp_path / "rw.db")
    assert len(again.reviews.labels("set2")) == 1
    again.close()


def test_bad_labels_are_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    with pytest.raises(ValueError, match="unknown label"):
        store.reviews.record("s", "q", "d", "maybe", "ann", 1.0)
    with pytest.raises(ValueError, match="reviewer"):
        store.reviews.record("s", "q", "d", "relevant", " ", 1.0)
    store.reviews.record_many(
        [
            ReviewRow("s", "q", "d", "relevant", "ann", 2.0),
            ReviewRow("s", "q", "d", "unsure", "ann", 1.0),
        ]
    )
    assert [r.label for r in store.reviews.labels("s")] == ["relevant"]  # the later one wins
    store.close()
