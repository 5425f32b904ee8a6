"""``metrics.cursor``: which evaluated checkpoint each scrape is shown (pure, no store)."""

from __future__ import annotations

import logging

import pytest

from recallwatch.metrics.cursor import (
    MAX_SCRAPERS,
    ExportCursor,
    Scrape,
    ScraperCursors,
    current_scrape,
    scrape,
)


def served(
    cursor: ExportCursor, evaluated: list[int], n: int, busy: set[int] | None = None
) -> list:
    return [cursor.choose("a", evaluated, busy or set(), advance=True) for _ in range(n)]


def test_each_checkpoint_once_in_the_given_order_then_the_latest() -> None:
    cursor = ExportCursor({"a": [1]})
    assert served(cursor, [1, 2, 3], 4) == [2, 3, 3, 3]
    # Nothing evaluated before the start: the first scrape shows the first checkpoint.
    assert served(ExportCursor({}), [5, 6], 3) == [5, 6, 6]
    assert ExportCursor({}).choose("a", [], set(), advance=True) is None


def test_a_late_lower_step_checkpoint_is_served_once_then_the_latest_again() -> None:
    cursor = ExportCursor({})
    assert served(cursor, [10, 30], 2) == [10, 30]
    # Step 20 finished after step 30 was served (evaluation concurrency): served once, late.
    assert served(cursor, [10, 20, 30], 3) == [20, 30, 30]


def test_a_non_advancing_scrape_repeats_what_the_last_advancing_one_showed() -> None:
    cursor = ExportCursor({})
    assert cursor.choose("a", [1, 2, 3], set(), advance=False) is None  # nothing served yet
    assert cursor.choose("a", [1, 2, 3], set(), advance=True) == 1
    assert [cursor.choose("a", [1, 2, 3], set(), advance=False) for _ in range(3)] == [1, 1, 1]
    assert cursor.choose("a", [1, 2, 3], set(), advance=True) == 2
    # The shown checkpoint left the evaluated state (an audit retry): the latest served stands in.
    assert cursor.choose("a", [1, 3], set(), advance=False) == 1


def test_busy_checkpoints_wait_and_the_runs_are_independent() -> None:
    cursor = ExportCursor({"a": [1], "b": [7]})
    assert served(cursor, [1, 2, 3], 2, busy={2}) == [3, 3]
    assert cursor.choose("b", [7, 8], set(), advance=True) == 8
    assert served(cursor, [1, 2, 3], 2) == [2, 3]


def test_a_backlog_over_the_limit_skips_the_oldest_logs_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cursor = ExportCursor({}, limit=3)
    with caplog.at_level(logging.WARNING, logger="recallwatch.exporter"):
        assert served(cursor, list(range(1, 8)), 4) == [5, 6, 7, 7]
    assert cursor.skipped() == {"a": 4}
    assert "4 evaluated checkpoint(s) never exported" in caplog.text


def test_scrapers_have_cursors_of_their_own_up_to_a_limit() -> None:
    cursors = ScraperCursors({})
    assert cursors.choose("", {"a": [1, 2]}, set(), advance=True) == ([1], {"a": 0})
    assert cursors.choose("p2", {"a": [1, 2]}, set(), advance=True) == ([1], {"a": 0})
    assert cursors.choose("", {"a": [1, 2]}, set(), advance=True) == ([2], {"a": 0})
    for i in range(MAX_SCRAPERS):
        cursors.choose(f"extra{i}", {"a": [1, 2]}, set(), advance=False)
    # Over the limit, a new name shares the default cursor (at 2 already).
    assert cursors.choose("one-too-many", {"a": [1, 2]}, set(), advance=True) == ([2], {"a": 0})


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
