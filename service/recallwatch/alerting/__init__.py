"""Alerting: rules decide on each evaluated checkpoint; alerts open, repeat and resolve as episodes;
notifications go out through the outbox.

Modules: ``regression`` (the pure decision functions), ``rules`` (one plugin per rule type),
``evidence`` (what an alert carries), ``episodes`` (the state machine of one alert key),
``resend`` (Alertmanager re-sends), ``links`` (an alert's links), ``engine`` (the decision
loop: ``Alerting``) and ``notifier`` (``Notifier``: the engine and the delivery workers, as the
daemon uses them). The alert record itself is ``recallwatch.records.alert``.
"""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting
from recallwatch.alerting.notifier import Notifier

__all__ = ["Alerting", "Notifier"]
