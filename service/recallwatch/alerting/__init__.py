"""Alerting: rules decide on each evaluated checkpoint; alerts open, repeat and resolve as episodes;
notifications go out through the outbox.

Modules: ``model`` (the alert data model), ``rules`` (one plugin per rule type;
``rules/recall_regression/`` holds everything that decides whether a checkpoint regressed),
``evidence`` (what an alert carries), ``episodes`` (the state machine of one alert key),
``resend`` (Alertmanager re-sends), ``texts`` (held-out texts for alerts) and ``engine`` (the
decision loop: ``Alerting``). The daemon wires the engine to delivery (``daemon.notifier``).

``Alerting`` is importable from here; it is loaded on first use, because the store imports
``alerting.model`` and the engine imports the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recallwatch.alerting.engine import Alerting

__all__ = ["Alerting"]


def __getattr__(name: str) -> Any:
    if name == "Alerting":
        from recallwatch.alerting.engine import Alerting

        return Alerting
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
