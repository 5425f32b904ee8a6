"""Tests of recallwatch.metrics.health: the daemon's own health as Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from recallwatch.metrics.health import DaemonHealthCollector


def test_daemon_health_from_readiness() -> None:
    state: dict[str, object] = {
        "ready": False,
        "checks": {"store": True, "scheduler": True, "recent_poll": False},
        "last_poll_at": None,
        "last_poll_error": None,
        "evaluating": 0,
    }
    registry = CollectorRegistry()
    registry.register(DaemonHealthCollector(lambda: state))
    get = registry.get_sample_value
    assert get("recallwatch_ready") == 0
    assert get("recallwatch_scheduler_running") == 1
    assert get("recallwatch_last_poll_timestamp_seconds") is None  # no poll yet
    assert get("recallwatch_last_poll_error") == 0
    state.update(
        ready=True,
        checks={"store": True, "scheduler": False, "recent_poll": True},
        last_poll_at=1234.5,
        last_poll_error="run a: PermissionError",
        evaluating=2,
    )
    assert get("recallwatch_ready") == 1
    assert get("recallwatch_scheduler_running") == 0
    assert get("recallwatch_last_poll_timestamp_seconds") == 1234.5
    assert get("recallwatch_last_poll_error") == 1
    assert get("recallwatch_evaluations_running") == 2


def test_restart_required_and_what_was_handled_from_readiness() -> None:
    state: dict[str, object] = {"ready": True, "checks": {}, "evaluating": 0}
    registry = CollectorRegistry()
    registry.register(DaemonHealthCollector(lambda: state))
    get = registry.get_sample_value
    # Before any reload and with nothing handled: no restart series, counters at 0.
    assert get("recallwatch_config_restart_required", {"section": "http"}) is None
    assert get("recallwatch_review_labels_restored_total") == 0
    assert get("recallwatch_review_undos_restored_total") == 0
    state.update(
        config={"restart_required": ["http", "store"]},
        handled={
            "alerts_suppressed": {"backfill": 3},
            "alert_decision_failures": {"checkpoint": 0, "early": 2, "tick": 1},
            "review_labels_restored": 2,
            "review_undos_restored": 1,
        },
    )
    assert get("recallwatch_config_restart_required", {"section": "http"}) == 1
    assert get("recallwatch_config_restart_required", {"section": "store"}) == 1
    assert get("recallwatch_alerts_suppressed_total", {"reason": "backfill"}) == 3
    assert get("recallwatch_alert_decision_failures_total", {"stage": "checkpoint"}) == 0
    assert get("recallwatch_alert_decision_failures_total", {"stage": "early"}) == 2
    assert get("recallwatch_alert_decision_failures_total", {"stage": "tick"}) == 1
    assert get("recallwatch_review_labels_restored_total") == 2
    assert get("recallwatch_review_undos_restored_total") == 1
