"""A resolved alert carries what resolved it — the recovered checkpoint, its metric against the
same baseline and the test that says so — in every channel, not the firing evidence again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recallwatch.alerting.engine import Alerting
from recallwatch.config import Config, parse_config
from recallwatch.notify.alertmanager import alertmanager_labels
from recallwatch.notify.slack import check_limits
from recallwatch.records.alert import Alert
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, B, Clock, Run, hits


def config_with_channels(tmp_path: Path, heldout: Path, rule: dict[str, Any]) -> Config:
    """One regression rule sending to a Slack, a webhook and an Alertmanager channel."""
    (tmp_path / "slack").write_text("https://hooks.slack.example/T/B/x")
    (tmp_path / "hook").write_text("https://receiver.example/alerts")
    return parse_config(
        {
            "heldout": [{"name": "synth", "path": str(heldout)}],
            "runs": [{"name": "r", "directory": "/nonexistent"}],
            "evaluation": {"ks": [10]},
            "notifications": {
                "api_url": "http://rw.example",
                "channels": [
                    {"name": "slack", "type": "slack", "webhook_url_file": str(tmp_path / "slack")},
                    {"name": "hook", "type": "webhook", "url_file": str(tmp_path / "hook")},
                    {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"},
                ],
                "rules": [{"channels": ["slack", "hook", "am"], **rule}],
            },
        }
    )


def bodies(store: Store, event: str) -> dict[str, Any]:
    """The stored body of each channel's ``event`` message, parsed."""
    rows = store.db.query("SELECT channel, body FROM outbox WHERE event = ? ORDER BY id", (event,))
    return {r[0]: json.loads(r[1]) for r in rows}


def fire_and_recover(
    tmp_path: Path, store: Store, synthetic: SyntheticSet
) -> tuple[Alert, Alert, dict[str, Any], dict[str, Any]]:
    config = config_with_channels(
        tmp_path, synthetic.path, {"name": "reg", "type": "recall_regression"}
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))  # 30 queries lost: fires
    (record,) = store.ledger.open_alerts()
    alerting.after_checkpoint(run.add(300, B, hits(51)))  # recovered
    resolved = store.ledger.alert(record.alert.id)
    assert resolved is not None and resolved.status == "resolved"
    return record.alert, resolved.alert, bodies(store, "firing"), bodies(store, "resolved")


def test_the_resolution_is_the_recovered_checkpoint_against_the_same_baseline(
    tmp_path: Path, store: Store, synthetic: SyntheticSet
) -> None:
    firing, resolved, _, _ = fire_and_recover(tmp_path, store, synthetic)
    assert firing.evidence.metric is not None
    assert firing.evidence.metric.after.estimate == pytest.approx(220 / 300)
    r = resolved.resolution
    assert r is not None
    assert (r.checkpoint, r.step) == ("checkpoint-300", 300)
    assert r.metric is not None
    # The same baseline as the firing evidence, the recovered checkpoint's recall, the test.
    assert r.metric.before.estimate == firing.evidence.metric.before.estimate
    assert r.metric.after.estimate == pytest.approx(249 / 300)
    assert r.metric.p_value > 0.2 and r.metric.alpha == 0.2  # resolve_alpha
    assert r.metric.queries == 300 and r.metric.checkpoint_variance is not None
    assert r.criterion is not None and "resolve_alpha (0.2)" in r.criterion
    assert resolved.summary == (
        "RESOLVED: recall@10 recovered: checkpoint-300 is no longer regressed against "
        "checkpoint-100 (r, synth)"
    )
    assert "0.8333 (checkpoint-100) → 0.8300 (checkpoint-300)" in resolved.description
    assert "level test, assuming a checkpoint-to-checkpoint SD" in resolved.description
    # The firing drop and p-value are not repeated as if they were the news.
    assert "fell" not in resolved.summary and "fell" not in resolved.description
    assert resolved.checkpoint == "checkpoint-300"
    # It survives the store (JSON) round trip.
    assert Alert.from_dict(resolved.as_dict()) == resolved


def test_every_channel_says_what_resolved_it(
    tmp_path: Path, store: Store, synthetic: SyntheticSet
) -> None:
    firing, _, fired, resolved = fire_and_recover(tmp_path, store, synthetic)
    assert set(resolved) == {"slack", "hook", "am"}
    assert firing.evidence.metric is not None
    old_p = f"p = {firing.evidence.metric.p_value:.2g}"

    # Webhook: ``data.resolution`` with the checkpoint, the metric and the test.
    data = resolved["hook"]["data"]
    assert resolved["hook"]["type"] == "alert.resolved"
    res = data["resolution"]
    assert res["checkpoint"] == "checkpoint-300" and res["step"] == 300
    assert res["metric"]["after"]["estimate"] == pytest.approx(249 / 300)
    assert res["metric"]["before"]["estimate"] == pytest.approx(250 / 300)
    assert res["metric"]["p_value"] > 0.2
    assert data["summary"].startswith("RESOLVED: recall@10 recovered")
    assert fired["hook"]["data"]["resolution"] is None

    # Slack: the resolving checkpoint and its numbers; no firing drop, lost queries or mining.
    slack = resolved["slack"]
    assert check_limits(slack) == []
    text = json.dumps(slack, ensure_ascii=False)
    assert "Resolved by" in text and "checkpoint-300 (step 300)" in text
    assert "0.8333" in text and "0.8300" in text and "resolve α = 0.2" in text
    assert "Lost queries" not in text and "Mining change" not in text
    assert old_p not in slack["text"]
    assert "0.8300" in slack["text"]
    assert "Lost queries" in json.dumps(fired["slack"], ensure_ascii=False)

    # Alertmanager: the resolved alert ends, its annotations say what resolved it.
    (am,) = resolved["am"]
    assert am["annotations"]["summary"].startswith("RESOLVED: recall@10 recovered")
    assert "checkpoint-300" in am["annotations"]["description"]
    assert am["annotations"]["checkpoint"] == "checkpoint-300"
    assert am["labels"] == fired["am"][0]["labels"]


def test_pinned_and_same_mining_regressions_are_recall_regression(
    tmp_path: Path, store: Store, synthetic: SyntheticSet
) -> None:
    config = config_with_channels(
        tmp_path,
        synthetic.path,
        {"name": "pin", "type": "recall_regression", "baseline_checkpoint": "checkpoint-100"},
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, A, hits(80)))
    (record,) = store.ledger.open_alerts()
    assert record.alert.evidence.regression_kind == "pinned"
    # The Prometheus rule for the same event (alerts/recallwatch.rules.yml) has this name.
    assert record.alert.alertname == "RecallRegression"
    (am,) = bodies(store, "firing")["am"]
    assert am["labels"]["alertname"] == "RecallRegression"


def test_alertmanager_labels_match_the_exporters_for_the_inhibit_rule(
    tmp_path: Path, store: Store, synthetic: SyntheticSet
) -> None:
    """deploy/alertmanager-inhibit.yml: equal alertname, run, dataset, k; daemon side
    service="recallwatch" and no source="prometheus"."""
    firing, _, fired, _ = fire_and_recover(tmp_path, store, synthetic)
    labels = alertmanager_labels(firing)
    assert labels["service"] == "recallwatch" and "source" not in labels
    assert labels["alertname"] == "RecallRegressionAfterMiningChange"
    # As the exporter labels recallwatch_recall_regression: the held-out set's name, k as text.
    assert (labels["run"], labels["dataset"], labels["k"]) == ("r", "synth", "10")
    assert fired["am"][0]["labels"] == labels
