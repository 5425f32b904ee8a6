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
"""

from __future__ import annotations

import os
import signal
from typing import Literal

__all__ = ["AFTER_DECISION", "ENV", "Failpoint", "crash_here", "enabled"]

#: The environment variable naming the enabled failpoint.
ENV = "RECALLWATCH_FAILPOINT"

Failpoint = Literal["after-decision"]

#: Right after an alert decision is committed, before any message of it is sent.
AFTER_DECISION: Failpoint = "after-decision"


def enabled(point: Failpoint) -> bool:
    """Whether a test enabled ``point`` for this process."""
    return os.environ.get(ENV) == point


def crash_here(point: Failpoint) -> None:
    """Kill this process with SIGKILL (no cleanup, like a power cut) if ``point`` is enabled."""
    if enabled(point):
        os.kill(os.getpid(), signal.SIGKILL)
