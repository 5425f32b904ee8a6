"""Prometheus metrics of the daemon's own health: what ``/readyz`` knows, at scrape time.

``server.create_app`` registers a ``DaemonHealthCollector`` over the daemon's readiness next to the
store's ``metrics.collector.RecallwatchCollector``; this collector reads no store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["HEALTH_FAMILIES", "DaemonHealthCollector"]

#: The families ``DaemonHealthCollector`` exports.
HEALTH_FAMILIES: dict[str, str] = {
    "recallwatch_ready": "gauge",
    "recallwatch_scheduler_running": "gauge",
    "recallwatch_last_poll_timestamp_seconds": "gauge",
    "recallwatch_last_poll_error": "gauge",
    "recallwatch_evaluations_running": "gauge",
    "recallwatch_config_restart_required": "gauge",
    "recallwatch_alerts_suppressed": "counter",
    "recallwatch_alert_decision_failures": "counter",
    "recallwatch_review_labels_restored": "counter",
    "recallwatch_review_undos_restored": "counter",
    "recallwatch_early_pass_failures": "counter",
    "recallwatch_review_estimate_failures": "counter",
    "recallwatch_zygote_restarts": "counter",
}

#: ``/readyz``'s ``handled`` counts exported as counters (without ``_total``), and their help.
HANDLED_COUNTERS = {
    "review_labels_restored": (
        "recallwatch_review_labels_restored",
        "Review labels the store lacked (lost with a -wal, a restored backup) put back from the "
        "review mirror at start.",
    ),
    "review_undos_restored": (
        "recallwatch_review_undos_restored",
        "Review labels the store still had although the mirror records a newer undo of them "
        "(the undo lost with a -wal): removed at start, the newest event wins.",
    ),
    "early_pass_failures": (
        "recallwatch_early_pass_failures",
        "Early passes (pooled corpus) that failed; the exact evaluation ran after each (logged).",
    ),
    "review_estimate_failures": (
        "recallwatch_review_estimate_failures",
        "Re-estimates of a mined set from its review labels that failed; retried after a minute "
        "or at the set's next label (logged).",
    ),
    "zygote_restarts": (
        "recallwatch_zygote_restarts",
        "Warm parents of the evaluation children (evaluation.warm_child) that died and were "
        "replaced at the next evaluation; the evaluations they held failed as crashed (logged).",
    ),
}


class DaemonHealthCollector(Collector):
    """The daemon's own health, as ``/readyz`` knows it (``Daemon.readiness``), at scrape time.

    ``recallwatch_ready`` (the readiness verdict), ``recallwatch_scheduler_running``,
    ``recallwatch_last_poll_timestamp_seconds`` (absent before the first poll),
    ``recallwatch_last_poll_error`` (1 when the last poll met an error),
    ``recallwatch_evaluations_running``, ``recallwatch_config_restart_required`` (1 while a
    reloaded configuration changed a section only a restart applies, by ``section``: absent when
    none) and the counters of what was handled silently (``/readyz``'s ``handled``): alerts
    recorded but not sent (``recallwatch_alerts_suppressed_total{reason}``), alert decisions that
    raised (``recallwatch_alert_decision_failures_total{stage}``), review labels and
    undos restored from the review mirror at start.
    """

    def __init__(self, readiness: Callable[[], Mapping[str, Any]]) -> None:
        self.readiness = readiness

    def describe(self) -> Iterable[Metric]:
        """Every family's name and type, without calling the daemon."""
        return [Metric(name, "", kind) for name, kind in HEALTH_FAMILIES.items()]

    def collect(self) -> Iterator[Metric]:
        """Build the health gauges from one readiness check."""
        state = self.readiness()
        checks: Mapping[str, Any] = state.get("checks") or {}
        yield GaugeMetricFamily(
            "recallwatch_ready",
            "1 when /readyz answers ready (store open, scheduler running, last poll recent).",
            value=float(bool(state.get("ready"))),
        )
        yield GaugeMetricFamily(
            "recallwatch_scheduler_running",
            "1 while the daemon's scheduler (discovery polls, notification ticks) runs.",
            value=float(bool(checks.get("scheduler"))),
        )
        last_poll = GaugeMetricFamily(
            "recallwatch_last_poll_timestamp_seconds",
            "When the daemon last finished scanning the runs for new checkpoints.",
        )
        if state.get("last_poll_at") is not None:
            last_poll.add_metric([], float(state["last_poll_at"]))
        yield last_poll
        yield GaugeMetricFamily(
            "recallwatch_last_poll_error",
            "1 when the last poll met an error scanning a run (the log and /readyz say which).",
            value=float(state.get("last_poll_error") is not None),
        )
        yield GaugeMetricFamily(
            "recallwatch_evaluations_running",
            "Evaluations running now.",
            value=float(state.get("evaluating") or 0),
        )
        restart = GaugeMetricFamily(
            "recallwatch_config_restart_required",
            "1 while the reloaded configuration changes this section, which only a restart "
            "applies (the daemon runs the section as it started).",
            labels=["section"],
        )
        for section in (state.get("config") or {}).get("restart_required") or ():
            restart.add_metric([str(section)], 1.0)
        yield restart
        handled: Mapping[str, Any] = state.get("handled") or {}
        suppressed = CounterMetricFamily(
            "recallwatch_alerts_suppressed",
            "Alert transitions (fire, repeat, resolve) recorded but not sent, by reason: "
            "backfill = a checkpoint seen long after it completed "
            "(notifications.backfill_quiet_seconds).",
            labels=["reason"],
        )
        for reason, count in sorted((handled.get("alerts_suppressed") or {}).items()):
            suppressed.add_metric([str(reason)], float(count))
        yield suppressed
        decisions = CounterMetricFamily(
            "recallwatch_alert_decision_failures",
            "Alert decisions that raised (logged), by stage: checkpoint (a checkpoint evaluated "
            "or failed), early (an early warning), tick (periodic rules, repeats, re-sends); "
            "decided again at the next checkpoint or tick, and at start.",
            labels=["stage"],
        )
        for stage, count in sorted((handled.get("alert_decision_failures") or {}).items()):
            decisions.add_metric([str(stage)], float(count))
        yield decisions
        for key, (name, text) in HANDLED_COUNTERS.items():
            yield CounterMetricFamily(name, text, value=float(handled.get(key) or 0))
