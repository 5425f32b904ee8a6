"""Alerting: rules decide on each evaluated checkpoint; alerts open, repeat and resolve as episodes;
notifications go out through the outbox.

Modules: ``model`` (the alert data model), ``regression`` (the pure decision functions),
``rules`` (one plugin per rule type), ``evidence`` (what an alert carries), ``episodes`` (the
state machine of one alert key), ``resend`` (Alertmanager re-sends), ``texts`` (held-out texts
for alerts), ``engine`` (the decision loop: ``Alerting``) and ``notifier`` (``Notifier``: the
engine and the delivery workers, as the daemon uses them).

``Alerting`` and ``Notifier`` are importable from here; they are loaded on first use, because the
store imports ``alerting.model`` and the engine imports the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recallwatch.alerting.engine import Alerting
    from recallwatch.alerting.notifier import Notifier

__all__ = ["Alerting", "Notifier"]


def __getattr__(name: str) -> Any:
    if name == "Alerting":
        from recallwatch.alerting.engine import Alerting

        return Alerting
    if name == "Notifier":
        from recallwatch.alerting.notifier import Notifier

        return Notifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
