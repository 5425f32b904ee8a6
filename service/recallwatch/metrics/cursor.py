"""Which evaluated checkpoint a scrape of ``/metrics`` is shown: every one in turn, in step order.

Only one checkpoint per run is on ``/metrics`` at a time, and several may be evaluated between two
scrapes (a backfill after downtime). An ``ExportCursor`` serves each one to one scrape before
moving on, so that every evaluated checkpoint reaches Prometheus:

- at each *advancing* scrape, the run's waiting checkpoint with the lowest step is served and
  marked done; waiting = evaluated since the cursor started, not done, not busy (the daemon still
  deciding on it); with none waiting, the latest done one is served again;
- the cursor starts after what was evaluated when the process started: no replay on restart;
- it follows what became evaluated (``EvaluatedCheckpoints.evaluated_changes``, the store's
  checkpoint change log) and looks checkpoints up by key: a scrape costs the waiting checkpoints,
  not the history;
- more than ``BACKLOG_LIMIT`` waiting: the oldest are skipped (logged and counted), so that the
  export lags the latest evaluation by at most that many scrapes.

A scrape advances unless its ``name[]`` filter asks for none of the per-checkpoint families.
``/metrics?scraper=NAME`` gives a scraper a cursor of its own (``MAX_SCRAPERS`` names), so that two
Prometheus servers each see every checkpoint. The state is in memory only (docs/daemon.md#metrics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from recallwatch.logs import fields

__all__ = [
    "BACKLOG_LIMIT",
    "MAX_SCRAPERS",
    "EvaluatedCheckpoints",
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


class EvaluatedCheckpoints(Protocol):
    """Each run's evaluated checkpoints as the cursor follows them (``ReadViews.evaluated_index``,
    a ``store.totals.CheckpointIndex``): what became evaluated since a position, and lookups by
    key, so that a scrape costs what changed and what is shown, not the history."""

    def evaluated_changes(self, since: int | None) -> tuple[int, list[tuple[str, int]] | None]:
        """Bring up to date; (position now, (run, id) evaluated after ``since``, None: unknown)."""

    def evaluated_runs(self) -> list[str]:
        """The runs with an evaluated checkpoint."""

    def is_evaluated(self, checkpoint_id: int) -> bool:
        """Whether the checkpoint is evaluated."""

    def order(self, checkpoint_id: int) -> tuple[bool, int, str]:
        """Its place in its run's step order."""

    def latest_evaluated(self, run: str, exclude: Collection[int] = ()) -> int | None:
        """The run's latest evaluated checkpoint not in ``exclude``."""


@dataclass
class _RunPosition:
    #: Checkpoints evaluated since the cursor started, not yet served nor skipped.
    waiting: set[int] = field(default_factory=set)
    #: The checkpoint the last advancing scrape was served (None: the latest not waiting).
    shown: int | None = None
    skipped: int = 0


@dataclass
class ExportCursor:
    """Which evaluated checkpoint of each run one scraper is shown, in memory.

    It knows only what became evaluated after it started (``add``): those wait to be served; every
    other evaluated checkpoint counts as done. Not thread-safe: ``ScraperCursors`` calls it under
    its lock.
    """

    limit: int = BACKLOG_LIMIT
    _runs: dict[str, _RunPosition] = field(default_factory=dict)

    def add(self, run: str, checkpoint_id: int) -> None:
        """A checkpoint of ``run`` became evaluated: it waits to be served."""
        self._runs.setdefault(run, _RunPosition()).waiting.add(checkpoint_id)

    def skipped(self) -> dict[str, int]:
        """How many evaluated checkpoints of each run this cursor skipped (backlog over limit)."""
        return {run: pos.skipped for run, pos in self._runs.items()}

    def choose(
        self, run: str, index: EvaluatedCheckpoints, busy: Collection[int], *, advance: bool
    ) -> int | None:
        """The checkpoint of ``run`` to export now (None: none yet).

        ``busy``: those the daemon has not decided on yet; ``advance``: serve the next waiting one.
        Costs the waiting checkpoints, not the run's history.
        """
        pos = self._runs.setdefault(run, _RunPosition())
        if advance:
            waiting = sorted(
                (c for c in pos.waiting if c not in busy and index.is_evaluated(c)),
                key=index.order,
            )
            if len(waiting) > self.limit:
                dropped = waiting[: len(waiting) - self.limit]
                pos.waiting.difference_update(dropped)
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
                pos.waiting.discard(waiting[0])
        if pos.shown is not None and index.is_evaluated(pos.shown):
            return pos.shown
        return index.latest_evaluated(run, pos.waiting)


class ScraperCursors:
    """An ``ExportCursor`` per scraper name (``MAX_SCRAPERS``, then the default one), all starting
    after what was evaluated when this was made; concurrent scrapes move them one at a time."""

    def __init__(self, index: EvaluatedCheckpoints, limit: int = BACKLOG_LIMIT) -> None:
        self._index = index
        self._limit = limit
        self._cursors: dict[str, ExportCursor] = {}
        self._lock = threading.Lock()
        self._position, _ = index.evaluated_changes(None)
        #: Per run: what became evaluated since the start (a cursor made later starts with it).
        self._since_start: dict[str, set[int]] = {}

    def choose(
        self,
        scraper: str,
        shown: Callable[[str], bool],
        busy: Callable[[], Collection[int]],
        *,
        advance: bool,
    ) -> tuple[list[int], dict[str, int]]:
        """The checkpoint to export of each run ``shown`` accepts (``ExportCursor.choose``), and
        how many checkpoints of each run this scraper's cursor skipped.

        ``busy`` is asked after the evaluated checkpoints are brought up to date: one marked
        evaluated is in flight until its regression decision is recorded, so none seen evaluated
        is exported before its decision.
        """
        with self._lock:
            self._position, changes = self._index.evaluated_changes(self._position)
            in_flight = frozenset(busy())
            if changes is None:
                # The index reloaded (rows deleted) or fell behind: what changed meanwhile is
                # unknown, so it counts as done (served to no one), as at a restart.
                log.warning("the export cursor lost track of new evaluations; none is replayed")
            for run, cid in changes or ():
                self._since_start.setdefault(run, set()).add(cid)
                for cursor in self._cursors.values():
                    cursor.add(run, cid)
            if scraper not in self._cursors and len(self._cursors) >= MAX_SCRAPERS:
                scraper = ""
            if scraper not in self._cursors:
                cursor = self._cursors[scraper] = ExportCursor(self._limit)
                for run, ids in self._since_start.items():
                    for cid in ids:
                        cursor.add(run, cid)
            cursor = self._cursors[scraper]
            chosen = [
                cursor.choose(run, self._index, in_flight, advance=advance)
                for run in self._index.evaluated_runs()
                if shown(run)
            ]
            return [c for c in chosen if c is not None], cursor.skipped()
