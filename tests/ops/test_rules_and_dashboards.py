"""Shipped Prometheus rules and Grafana dashboards: valid, unit-tested, and naming real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "recallwatch.rules.yml"
RULE_TESTS = REPO / "alerts" / "tests" / "recallwatch.test.yml"
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
RUNBOOK = REPO / "docs" / "runbook.md"

# The metric families of DESIGN.md (histograms and counters as exposed on /metrics).
DESIGN_METRICS = {
    "recallwatch_recall_ratio",
    "recallwatch_success_ratio",
    "recallwatch_mrr_ratio",
    "recallwatch_ndcg_ratio",
    "recallwatch_recall_baseline_ratio",
    "recallwatch_recall_regression",
    "recallwatch_checkpoint_step",
    "recallwatch_checkpoint_info",
    "recallwatch_mining_change_timestamp_seconds",
    "recallwatch_false_negative_ratio",
    "recallwatch_false_negative_bucket_ratio",
    "recallwatch_label_noise_amplification",
    "recallwatch_evaluations_total",
    "recallwatch_evaluation_failures_total",
    "recallwatch_evaluation_duration_seconds_bucket",
    "recallwatch_last_successful_evaluation_timestamp_seconds",
    "recallwatch_checkpoints_pending",
    "recallwatch_notifications_total",
    "recallwatch_notification_failures_total",
    "recallwatch_notifications_failed_total",
    "recallwatch_outbox_pending",
    "recallwatch_build_info",
}
METRIC = re.compile(r"\brecallwatch_[a-z_]+\b")


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not found: apt-get install -y prometheus (it ships promtool)")
    return exe


def test_promtool_checks_the_rules() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_for_severity_and_a_runbook_anchor_that_exists() -> None:
    doc = yaml.safe_load(RULES.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "RecallRegressionAfterMiningChange",
        "FalseNegativeRateHigh",
        "RecallwatchEvaluationFailing",
        "RecallwatchNoRecentEvaluation",
        "RecallwatchDown",
    }
    runbook = RUNBOOK.read_text()
    anchors = {m.lower().replace(" ", "") for m in re.findall(r"^## (.+)$", runbook, re.M)}
    for a in alerts:
        assert re.fullmatch(r"\d+m", a["for"]), a["alert"]
        assert a["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook_url"} <= set(a["annotations"])
        anchor = a["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == a["alert"].lower() and anchor in anchors, a["alert"]
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {a["alert"] for a in alerts}


def test_rules_and_dashboards_name_only_design_metrics() -> None:
    texts = [RULES.read_text()] + [d.read_text() for d in DASHBOARDS]
    used = {m for t in texts for m in METRIC.findall(t)}
    used -= {"recallwatch_recall_drop", "recallwatch_seconds_since_last_evaluation"}  # recorded
    assert used and used <= DESIGN_METRICS, sorted(used - DESIGN_METRICS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_is_importable_json(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "run"} <= names
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        for t in p["targets"]:
            # Every variable a query uses is defined.
            assert set(re.findall(r"\$(\w+)", t["expr"])) <= names, (p["title"], t["expr"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_queries_are_valid_promql(path: Path, tmp_path: Path) -> None:
    """promtool parses each query (variables replaced by match-all) as a recording rule."""
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    exprs += [
        v["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0]
        for v in dash["templating"]["list"]
        if v["type"] == "query"
    ]
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", e)}
        for i, e in enumerate(exprs)
    ]
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_every_daemon_alert_name_has_a_runbook_section() -> None:
    from recallwatch.alerting.model import ALERTNAMES
    from recallwatch.notify.alertmanager import RUNBOOK_DOC

    assert (REPO / RUNBOOK_DOC) == RUNBOOK
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.M))
    assert set(ALERTNAMES.values()) <= headings, set(ALERTNAMES.values()) - headings
