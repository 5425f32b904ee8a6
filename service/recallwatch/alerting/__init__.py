"""Alerting: rules decide on each evaluated checkpoint; alerts open, repeat and resolve as episodes;
notifications go out through the outbox.

Modules: ``rules`` (one plugin per rule type; ``rules/recall_regression/`` holds everything that
decides whether a checkpoint regressed), ``evidence`` (what an alert carries), ``episodes`` (the
state machine of one alert key), ``resend`` (Alertmanager re-sends), ``links`` (an alert's links)
and ``engine`` (the decision loop: ``Alerting``). The daemon wires the engine to delivery
(``daemon.notifier``). The alert record itself is ``recallwatch.records.alert``.
"""

from __future__ import annotations

from recallwatch.alerting.engine import Alerting

__all__ = ["Alerting"]
