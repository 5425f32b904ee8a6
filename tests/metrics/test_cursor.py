"""``metrics.cursor``: which evaluated checkpoint each scrape is shown (pure, no store)."""

from __future__ import annotations

import logging
from collections.abc import Collection

import pytest

from recallwatch.metrics.cursor import (
    MAX_SCRAPERS,
    ExportCursor,
    Scrape,
    ScraperCursors,
    current_scrape,
    scrape,
)


class Index:
    """``EvaluatedCheckpoints`` over lists: each run's evaluated ids in step order, and the log
    of what became evaluated (as ``store.totals.CheckpointIndex`` keeps them)."""

    def __init__(self, **runs: list[int]) -> None:
        self.runs = {r: list(ids) for r, ids in runs.items()}
        self.log: list[tuple[str, int]] = []

    def set(self, run: str, evaluated: list[int]) -> None:
        """``run``'s evaluated checkpoints are now ``evaluated``: the new ones are logged."""
        self.log += [(run, c) for c in evaluated if c not in self.runs.get(run, [])]
        self.runs[run] = list(evaluated)

    def evaluated_changes(self, since: int | None) -> tuple[int, list[tuple[str, int]] | None]:
        return len(self.log), None if since is None else self.log[since:]

    def evaluated_runs(self) -> list[str]:
        return sorted(r for r, ids in self.runs.items() if ids)

    def is_evaluated(self, checkpoint_id: int) -> bool:
        return any(checkpoint_id in ids for ids in self.runs.values())

    def order(self, checkpoint_id: int) -> tuple[bool, int, str]:
        return (True, checkpoint_id, "")

    def latest_evaluated(self, run: str, exclude: Collection[int] = ()) -> int | None:
        return next((c for c in reversed(self.runs.get(run, [])) if c not in exclude), None)


def served(
    cursor: ExportCursor, index: Index, evaluated: list[int], n: int, busy: set[int] | None = None
) -> list[int | None]:
    """Run ``a`` has ``evaluated`` (new ones added to the cursor); ``n`` advancing scrapes."""
    before = len(index.log)
    index.set("a", evaluated)
    for run, cid in index.log[before:]:
        cursor.add(run, cid)
    return [cursor.choose("a", index, busy or set(), advance=True) for _ in range(n)]


def test_each_checkpoint_once_in_the_given_order_then_the_latest() -> None:
    cursor, index = ExportCursor(), Index(a=[1])
    assert served(cursor, index, [1, 2, 3], 4) == [2, 3, 3, 3]
    # Nothing evaluated before the start: the first scrape shows the first checkpoint.
    assert served(ExportCursor(), Index(), [5, 6], 3) == [5, 6, 6]
    assert ExportCursor().choose("a", Index(), set(), advance=True) is None


def test_a_late_lower_step_checkpoint_is_served_once_then_the_latest_again() -> None:
    cursor, index = ExportCursor(), Index()
    assert served(cursor, index, [10, 30], 2) == [10, 30]
    # Step 20 finished after step 30 was served (evaluation concurrency): served once, late.
    assert served(cursor, index, [10, 20, 30], 3) == [20, 30, 30]


def test_a_non_advancing_scrape_repeats_what_the_last_advancing_one_showed() -> None:
    cursor, index = ExportCursor(), Index()
    assert served(cursor, index, [1, 2, 3], 0) == []
    assert cursor.choose("a", index, set(), advance=False) is None  # nothing served yet
    assert cursor.choose("a", index, set(), advance=True) == 1
    assert [cursor.choose("a", index, set(), advance=False) for _ in range(3)] == [1, 1, 1]
    assert cursor.choose("a", index, set(), advance=True) == 2
    # The shown checkpoint left the evaluated state (an audit retry): the latest served stands in.
    index.set("a", [1, 3])
    assert cursor.choose("a", index, set(), advance=False) == 1


def test_busy_checkpoints_wait_and_the_runs_are_independent() -> None:
    cursor, index = ExportCursor(), Index(a=[1], b=[7])
    assert served(cursor, index, [1, 2, 3], 2, busy={2}) == [3, 3]
    index.set("b", [7, 8])
    cursor.add("b", 8)
    assert cursor.choose("b", index, set(), advance=True) == 8
    assert served(cursor, index, [1, 2, 3], 2) == [2, 3]


def test_a_backlog_over_the_limit_skips_the_oldest_logs_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cursor = ExportCursor(limit=3)
    with caplog.at_level(logging.WARNING, logger="recallwatch.exporter"):
        assert served(cursor, Index(), list(range(1, 8)), 4) == [5, 6, 7, 7]
    assert cursor.skipped() == {"a": 4}
    assert "4 evaluated checkpoint(s) never exported" in caplog.text


def test_scrapers_have_cursors_of_their_own_up_to_a_limit() -> None:
    index = Index()
    cursors = ScraperCursors(index)
    index.set("a", [1, 2])
    every = lambda run: True  # noqa: E731
    idle = frozenset

    assert cursors.choose("", every, idle, advance=True) == ([1], {"a": 0})
    assert cursors.choose("p2", every, idle, advance=True) == ([1], {"a": 0})
    assert cursors.choose("", every, idle, advance=True) == ([2], {"a": 0})
    for i in range(MAX_SCRAPERS):
        cursors.choose(f"extra{i}", every, idle, advance=False)
    # Over the limit, a new name shares the default cursor (at 2 already).
    assert cursors.choose("one-too-many", every, idle, advance=True) == ([2], {"a": 0})
    # Runs not shown are left out; what was evaluated before the cursors started is never served.
    assert cursors.choose("", lambda run: run != "a", idle, advance=True) == ([], {"a": 0})
    assert ScraperCursors(index).choose("", every, idle, advance=True) == ([2], {"a": 0})


def test_the_busy_checkpoints_are_read_after_the_evaluated_ones() -> None:
    index = Index()
    cursors = ScraperCursors(index)
    index.set("a", [1])
    asked: list[int] = []

    def busy() -> frozenset[int]:
        asked.append(len(index.log))  # what the cursor had seen when it asked
        return frozenset({1})

    assert cursors.choose("", lambda run: True, busy, advance=True) == ([], {"a": 0})
    assert asked == [1]


def test_the_scrape_context_says_whether_a_scrape_advances() -> None:
    samples = {"recallwatch_checkpoint_step", "recallwatch_checkpoint_info"}
    assert current_scrape() == Scrape()
    assert current_scrape().advances(samples)
    with scrape(["recallwatch_outbox_pending"], "p2"):
        assert current_scrape() == Scrape(frozenset({"recallwatch_outbox_pending"}), "p2")
        assert not current_scrape().advances(samples)
    with scrape(["recallwatch_checkpoint_info", "x"]):
        assert current_scrape().advances(samples)
    with scrape(None, "x" * 65):  # an over-long name gets the default cursor
        assert current_scrape() == Scrape(None, "")
    assert current_scrape() == Scrape()
