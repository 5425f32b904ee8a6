"""Failure injection for tests: named points where the process can be made to crash on purpose.

Every failpoint is inert unless a test enables it, by setting the environment variable
``RECALLWATCH_FAILPOINT`` to the point's name in the environment of the process under test (the
tests start ``recallwatch serve`` as a subprocess, so an environment variable is how they reach
it). Production code marks a point with ``crash_here(NAME)``, which does nothing unless enabled.

The points:

- ``after-decision`` (``AFTER_DECISION``): the alerting engine SIGKILLs its own process right
  after an alert decision and its outbox messages are committed, before anything is sent: the
  crash the outbox exists for (``tests/alerting/test_end_to_end.py`` restarts the daemon and
  checks that the message is delivered once, with the same id).
- ``store-max-pages`` (``STORE_MAX_PAGES``): before each write, the store sets SQLite's
  ``PRAGMA max_page_count`` on its connection to the number in the file named by
  ``RECALLWATCH_FAILPOINT_FILE`` (SQLite raises a number below the database's size to its size):
  a real ``SQLITE_FULL`` on the next write that needs a page, lifted by writing a larger number
  (``tests/daemon/test_store_full.py``).
- ``hold-exact`` (``HOLD_EXACT``): the daemon waits before each exact evaluation while the file
  named by ``RECALLWATCH_FAILPOINT_FILE`` exists, so a test can look at what the early pass
  recorded while the exact pass has not finished (``tests/daemon/test_early.py``).
"""

from __future__ import annotations

import os
import signal
from typing import Literal, Protocol

__all__ = [
    "AFTER_DECISION",
    "ENV",
    "FILE_ENV",
    "HOLD_EXACT",
    "STORE_MAX_PAGES",
    "Failpoint",
    "crash_here",
    "enabled",
    "hold_here",
    "store_max_pages",
]

#: The environment variable naming the enabled failpoint.
ENV = "RECALLWATCH_FAILPOINT"

#: The environment variable naming a failpoint's argument file (``store-max-pages``).
FILE_ENV = "RECALLWATCH_FAILPOINT_FILE"

Failpoint = Literal["after-decision", "store-max-pages", "hold-exact"]

#: Right after an alert decision is committed, before any message of it is sent.
AFTER_DECISION: Failpoint = "after-decision"

#: Before each exact evaluation: wait while the file named by ``FILE_ENV`` exists.
HOLD_EXACT: Failpoint = "hold-exact"

#: Before each write to the store: a page limit read from ``FILE_ENV``'s file.
STORE_MAX_PAGES: Failpoint = "store-max-pages"


def enabled(point: Failpoint) -> bool:
    """Whether a test enabled ``point`` for this process."""
    return os.environ.get(ENV) == point


def crash_here(point: Failpoint) -> None:
    """Kill this process with SIGKILL (no cleanup, like a power cut) if ``point`` is enabled."""
    if enabled(point):
        os.kill(os.getpid(), signal.SIGKILL)


def store_max_pages() -> int | None:
    """The store's page limit when ``store-max-pages`` is enabled (its file's number), else None."""
    if not enabled(STORE_MAX_PAGES):
        return None
    path = os.environ.get(FILE_ENV)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


class _Cancel(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def hold_here(point: Failpoint, cancel: _Cancel, poll_seconds: float = 0.05) -> None:
    """Wait while ``point`` is enabled and its file exists (or until ``cancel`` is set)."""
    if not enabled(point):
        return
    path = os.environ.get(FILE_ENV)
    while path and os.path.exists(path) and not cancel.is_set():
        cancel.wait(poll_seconds)
