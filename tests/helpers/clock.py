"""A clock that tests move, for code whose threads wait on ``threading.Event``s with timeouts.

``ManualClock`` is the ``clock`` (called for the time) and the ``wait`` of a ``notify.delivery.
Dispatcher``. A thread that waits on it blocks until its event is set or the clock reaches the
wait's end; ``waits`` keeps every timeout asked for, so a test asserts what was scheduled instead
of measuring the wall clock. The clock moves only in ``run_until``, which jumps it to the end of
the earliest wait in progress until a condition holds: no test sleeps through a retry's backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Real seconds between looks at a waiting thread's event (setting it does not notify the clock).
POLL = 0.01
#: Where a ``ManualClock`` starts unless told: a fixed time, so runs are alike.
START = 1_800_000_000.0


class ManualClock:
    """Time that passes only when the test moves it; ``wait`` follows it, not the wall clock."""

    def __init__(self, now: float = START) -> None:
        self._now = now
        self._changed = threading.Condition()
        self._ends: list[float] = []  # of the waits in progress
        self.waits: list[float] = []

    def __call__(self) -> float:
        """The clock's time."""
        with self._changed:
            return self._now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set or the clock reaches ``timeout`` past now; whether set."""
        with self._changed:
            end = self._now + timeout
            self.waits.append(timeout)
            self._ends.append(end)
            self._changed.notify_all()
            try:
                while not event.is_set() and self._now < end:
                    self._changed.wait(POLL)
            finally:
                self._ends.remove(end)
            return event.is_set()

    def run_until(
        self, probe: Callable[[], object], *, timeout: float = 10.0, what: str = ""
    ) -> None:
        """Move the clock to the end of the earliest wait in progress, again and again, until
        ``probe`` returns something truthy; fail after ``timeout`` real seconds."""
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
            with self._changed:
                if self._ends:
                    self._now = max(self._now, min(self._ends))
                    self._changed.notify_all()
                # Until a thread starts its next wait (or a moment passes): the probe's answer
                # may be on its way from a thread that is still working.
                self._changed.wait(POLL)
