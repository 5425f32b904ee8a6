"""Which evaluated checkpoint a scrape of ``/metrics`` is shown: every one in turn, in step order.

Only one checkpoint per run is on ``/metrics`` at a time, and several may be evaluated between two
scrapes (a backfill after downtime). An ``ExportCursor`` serves each one to one scrape before
moving on, so that every evaluated checkpoint reaches Prometheus:

- at each *advancing* scrape, the run's waiting checkpoint with the lowest step is served and
  marked done; waiting = evaluated since the cursor started, not done, not busy (the daemon still
  deciding on it); with none waiting, the latest done one is served again;
- the cursor starts after what was evaluated when the process started: no replay on restart;
- more than ``BACKLOG_LIMIT`` waiting: the oldest are skipped (logged and counted), so that the
  export lags the latest evaluation by at most that many scrapes.

A scrape advances unless its ``name[]`` filter asks for none of the per-checkpoint families.
``/metrics?scraper=NAME`` gives a scraper a cursor of its own (``MAX_SCRAPERS`` names), so that two
Prometheus servers each see every checkpoint. The state is in memory only (docs/daemon.md#metrics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from recallwatch.logs import fields

__all__ = [
    "BACKLOG_LIMIT",
    "MAX_SCRAPERS",
    "ExportCursor",
    "Scrape",
    "ScraperCursors",
    "current_scrape",
    "scrape",
]

# Named as before the metrics package existed: log filters and alerts select on the name.
log = logging.getLogger("recallwatch.exporter")

#: The most evaluated checkpoints of a run waiting to be exported, one per scrape: beyond it the
#: oldest are skipped (``recallwatch_checkpoints_not_exported_total``), so that the exported
#: checkpoint lags the latest by at most this many scrapes.
BACKLOG_LIMIT = 100

#: Scraper names with a cursor of their own (``/metrics?scraper=NAME``); further names, and names
#: over ``SCRAPER_NAME_CHARS`` characters, share the default cursor.
MAX_SCRAPERS = 8
SCRAPER_NAME_CHARS = 64


@dataclass(frozen=True)
class Scrape:
    """One collection as ``/metrics`` serves it: the ``name[]`` filter and the scraper's name."""

    #: The sample names asked for; None: everything.
    names: frozenset[str] | None = None
    #: ``?scraper=NAME``; empty: the default cursor.
    scraper: str = ""

    def advances(self, checkpoint_samples: Collection[str]) -> bool:
        """Whether this scrape asks for a per-checkpoint sample (then it moves the cursor on)."""
        return self.names is None or not self.names.isdisjoint(checkpoint_samples)


_SCRAPE: ContextVar[Scrape | None] = ContextVar("recallwatch_scrape", default=None)


@contextmanager
def scrape(names: Iterable[str] | None = None, scraper: str = "") -> Iterator[None]:
    """Collect within this block as the scrape ``/metrics`` serves (``MetricsApp``).

    Outside any such block a collection is an unfiltered scrape by the default scraper.
    """
    name = scraper if len(scraper) <= SCRAPER_NAME_CHARS else ""
    token = _SCRAPE.set(Scrape(None if names is None else frozenset(names), name))
    try:
        yield
    finally:
        _SCRAPE.reset(token)


def current_scrape() -> Scrape:
    """The scrape being collected (``scrape``), or an unfiltered one by the default scraper."""
    return _SCRAPE.get() or Scrape()


@dataclass
class _RunPosition:
    #: Evaluated checkpoints never to be served again: served ones, skipped ones and those
    #: evaluated before the cursor started.
    done: set[int]
    #: The checkpoint the last advancing scrape was served (None: the latest done).
    shown: int | None = None
    skipped: int = 0


@dataclass
class ExportCursor:
    """Which evaluated checkpoint of each run one scraper is shown, in memory.

    ``start``: each run's checkpoints evaluated before the process started (never replayed).
    Not thread-safe: the collector calls it under its lock.
    """

    start: Mapping[str, Collection[int]]
    limit: int = BACKLOG_LIMIT
    _runs: dict[str, _RunPosition] = field(default_factory=dict)

    def skipped(self) -> dict[str, int]:
        """How many evaluated checkpoints of each run this cursor skipped (backlog over limit)."""
        return {run: pos.skipped for run, pos in self._runs.items()}

    def choose(
        self, run: str, evaluated: Sequence[int], busy: Collection[int], *, advance: bool
    ) -> int | None:
        """The checkpoint of ``run`` to export now (None: none yet).

        ``evaluated``: the run's evaluated checkpoints in step order, latest last; ``busy``: those
        the daemon has not decided on yet; ``advance``: serve the next waiting one.
        """
        pos = self._runs.get(run)
        if pos is None:
            pos = self._runs[run] = _RunPosition(set(self.start.get(run, ())))
        if advance:
            waiting = [c for c in evaluated if c not in pos.done and c not in busy]
            if len(waiting) > self.limit:
                dropped = waiting[: len(waiting) - self.limit]
                pos.done.update(dropped)
                pos.skipped += len(dropped)
                waiting = waiting[len(dropped) :]
                log.warning(
                    "%d evaluated checkpoint(s) never exported to this scraper: more than %d "
                    "waited to be scraped",
                    len(dropped),
                    self.limit,
                    extra=fields(run=run),
                )
            pos.shown = waiting[0] if waiting else None
            if waiting:
                pos.done.add(waiting[0])
        if pos.shown is not None and pos.shown in evaluated:
            return pos.shown
        return next((c for c in reversed(evaluated) if c in pos.done), None)


class ScraperCursors:
    """An ``ExportCursor`` per scraper name (``MAX_SCRAPERS``, then the default one), all starting
    after ``start``; concurrent scrapes move them one at a time."""

    def __init__(self, start: Mapping[str, Collection[int]], limit: int = BACKLOG_LIMIT) -> None:
        self._start = start
        self._limit = limit
        self._cursors: dict[str, ExportCursor] = {}
        self._lock = threading.Lock()

    def choose(
        self,
        scraper: str,
        evaluated: Mapping[str, Sequence[int]],
        busy: Collection[int],
        *,
        advance: bool,
    ) -> tuple[list[int], dict[str, int]]:
        """The checkpoint to export of each run in ``evaluated`` (``ExportCursor.choose``), and
        how many checkpoints of each run this scraper's cursor skipped."""
        with self._lock:
            if scraper not in self._cursors and len(self._cursors) >= MAX_SCRAPERS:
                scraper = ""
            cursor = self._cursors.setdefault(scraper, ExportCursor(self._start, self._limit))
            chosen = [
                cursor.choose(run, ids, busy, advance=advance) for run, ids in evaluated.items()
            ]
            return [c for c in chosen if c is not None], cursor.skipped()
