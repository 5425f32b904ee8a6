"""The daemon (``recallwatch serve``): discovery, the evaluation queue, the FN auditor.

Modules: ``daemon`` (the ``Daemon``, the pipeline read top-down), ``discovery`` (complete
checkpoints found and queued), ``scheduling`` (which queued checkpoint runs next),
``evaluation`` (one held-out evaluation run and stored), ``auditor`` (the false-negative audit
of each mined set), ``runner`` (evaluations and audits in child processes), ``zygote`` (the
warm parent those children fork from), ``notifier`` (the alerting engine wired to the delivery
workers).

``Daemon`` is imported on first use: the child processes (``python -m
recallwatch.daemon.runner``) and the warm parent (``python -m recallwatch.daemon.zygote``) import
this package and need none of the daemon's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recallwatch.daemon.daemon import Daemon as Daemon

__all__ = ["Daemon"]


def __getattr__(name: str) -> Any:
    if name == "Daemon":
        from recallwatch.daemon.daemon import Daemon

        return Daemon
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
