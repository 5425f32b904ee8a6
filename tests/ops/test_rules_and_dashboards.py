"""Shipped Prometheus rules and Grafana dashboards: generated, valid, unit-tested, naming real
metrics, and without the blind spots of issue 11."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "recallwatch.rules.yml"
GENERATOR = REPO / "alerts" / "generate.py"
RULE_TESTS = sorted((REPO / "alerts" / "tests").glob("*.test.yml"))
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
RUNBOOK = REPO / "docs" / "runbook.md"
EXAMPLE_CONFIG = REPO / "examples" / "recallwatch.yaml"

# The metric families the exporter exposes (docs/daemon.md#metrics; counters and histograms as
# they appear on /metrics).
EXPORTED_METRICS = {
    "recallwatch_recall_ratio",
    "recallwatch_success_ratio",
    "recallwatch_mrr_ratio",
    "recallwatch_ndcg_ratio",
    "recallwatch_unjudged_ratio",
    "recallwatch_recall_baseline_ratio",
    "recallwatch_recall_regression",
    "recallwatch_checkpoint_step",
    "recallwatch_checkpoint_info",
    "recallwatch_mining_change_timestamp_seconds",
    "recallwatch_mining_change_step",
    "recallwatch_false_negative_ratio",
    "recallwatch_false_negative_bucket_ratio",
    "recallwatch_label_noise_amplification",
    "recallwatch_evaluations_total",
    "recallwatch_evaluation_failures_total",
    "recallwatch_evaluation_duration_seconds_bucket",
    "recallwatch_last_successful_evaluation_timestamp_seconds",
    "recallwatch_checkpoints_pending",
    "recallwatch_checkpoints_not_exported_total",
    "recallwatch_notifications_total",
    "recallwatch_notification_failures_total",
    "recallwatch_notifications_failed_total",
    "recallwatch_outbox_pending",
    "recallwatch_build_info",
    "recallwatch_early_recall_upper_bound",
    "recallwatch_early_warning",
    "recallwatch_false_negative_audit_failures_total",
    "recallwatch_ready",
    "recallwatch_scheduler_running",
    "recallwatch_last_poll_timestamp_seconds",
    "recallwatch_last_poll_error",
    "recallwatch_evaluations_running",
    "recallwatch_config_reloads_total",
    "recallwatch_config_last_reload_successful",
    "recallwatch_config_restart_required",
    "recallwatch_alerts_suppressed_total",
    "recallwatch_alert_decision_failures_total",
    "recallwatch_review_labels_restored_total",
    "recallwatch_review_undos_restored_total",
    "recallwatch_early_pass_failures_total",
    "recallwatch_review_estimate_failures_total",
    "recallwatch_zygote_restarts_total",
}
METRIC = re.compile(r"\brecallwatch_[a-z_]+\b")
ALERTS = {
    "RecallRegressionAfterMiningChange",
    "RecallRegression",
    "RecallEarlyWarning",
    "FalseNegativeRateHigh",
    "RecallwatchEvaluationFailing",
    "RecallwatchNoRecentEvaluation",
    "RecallwatchDown",
}


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not found: apt-get install -y prometheus (it ships promtool)")
    return exe


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recallwatch_rules_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rules_of(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def alerts_of(path: Path) -> list[dict[str, Any]]:
    return [r for r in rules_of(path) if "alert" in r]


# -- generated from one place -----------------------------------------------------------------


def test_committed_rules_are_the_generators_output() -> None:
    gen = generator()
    for path, text in gen.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python alerts/generate.py"
    out = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheusrule_carries_the_same_groups_as_the_rule_file() -> None:
    gen = generator()
    rule = yaml.safe_load(gen.PROMETHEUSRULE_PATH.read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_job_selector_and_runbook_base_url_are_set_once() -> None:
    """Neither is written anywhere in the generator but in its two constants."""
    gen = generator()
    source = GENERATOR.read_text()
    assert source.count(gen.JOB_SELECTOR) == 1, "job selector written more than once"
    assert source.count(gen.RUNBOOK_BASE_URL) == 1, "runbook base URL written more than once"
    text = RULES.read_text()
    assert set(re.findall(r"up\{([^}]*)\}", text)) == {gen.JOB_SELECTOR}


# -- validity and unit tests ------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in out.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_unit_tests_pass(path: Path) -> None:
    out = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_for_severity_labels_and_an_absolute_runbook_url() -> None:
    gen = generator()
    alerts = alerts_of(RULES)
    assert {a["alert"] for a in alerts} == ALERTS
    runbook = RUNBOOK.read_text()
    anchors = {m.lower().replace(" ", "") for m in re.findall(r"^## (.+)$", runbook, re.M)}
    for a in alerts:
        assert re.fullmatch(r"\d+m", a["for"]), a["alert"]
        assert a["labels"]["severity"] in {"warning", "critical"}
        # Routed like the daemon's alerts (service), told apart from them (source).
        assert a["labels"]["service"] == "recallwatch" and a["labels"]["source"] == "prometheus"
        assert {"summary", "description", "runbook_url"} <= set(a["annotations"])
        url = a["annotations"]["runbook_url"]
        assert urlparse(url).scheme in {"http", "https"} and urlparse(url).netloc, url
        base, anchor = url.split("#", 1)
        assert base == gen.RUNBOOK_BASE_URL
        assert anchor == a["alert"].lower() and anchor in anchors, a["alert"]
    tested = {n for p in RULE_TESTS for n in re.findall(r"alertname: (\w+)", p.read_text())}
    assert tested == ALERTS


def test_every_recording_rule_is_used() -> None:
    texts = [RULES.read_text()] + [d.read_text() for d in DASHBOARDS]
    for rule in rules_of(RULES):
        if "record" in rule:
            uses = sum(t.count(rule["record"]) for t in texts)
            assert uses > 1, f"recording rule {rule['record']} is never used"


def test_prometheus_alert_names_are_the_daemons() -> None:
    """The same event has the same alertname on both paths (the inhibit rule relies on it)."""
    from recallwatch.alerting.rules import alertnames
    from recallwatch.commands.notify_test import TEST_ALERTNAME

    names = alertnames() | {TEST_ALERTNAME}
    assert ALERTS - {"RecallwatchDown"} <= names


def _run_promtool_test(rules: Path, tests: list[dict[str, Any]], tmp: Path) -> str:
    test_file = tmp / f"{rules.stem}.test.yml"
    doc = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}
    test_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True
    )
    return out.stdout + out.stderr if out.returncode != 0 else ""


def test_recallwatch_down_follows_the_generated_job_selector(tmp_path: Path) -> None:
    """Scraped under another job (pod annotations), a healthy daemon must not look down.

    The rules before issue 11 hard-coded job="recallwatch": with up{job="kubernetes-pods"} == 1
    they fired RecallwatchDown forever. A copy generated with the scrape's selector does not, and
    still fires when that target goes down.
    """
    gen = generator()
    selector = 'job="kubernetes-pods",app_kubernetes_io_name="recallwatch"'
    custom = tmp_path / "custom.rules.yml"
    assert (
        gen.main(
            [
                "--job-selector",
                selector,
                "--rules",
                str(custom),
                "--prometheusrule",
                str(tmp_path / "prometheusrule.yaml"),
            ]
        )
        == 0
    )
    url = f"{gen.RUNBOOK_BASE_URL}#recallwatchdown"
    labels = {"job": "kubernetes-pods", "app_kubernetes_io_name": "recallwatch", "instance": "p"}
    series = "up{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    tests = [
        {
            "interval": "1m",
            "input_series": [
                {"series": series, "values": "1x10 0x10"},
                # Another pod of the same job that is not recallwatch: none of its business.
                {"series": 'up{job="kubernetes-pods",instance="q"}', "values": "0x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": "RecallwatchDown", "exp_alerts": []},
                {
                    "eval_time": "19m",
                    "alertname": "RecallwatchDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                **labels,
                                "severity": "critical",
                                "service": "recallwatch",
                                "source": "prometheus",
                            },
                            "exp_annotations": {
                                "summary": "recallwatch is down or not scraped",
                                "description": "Prometheus cannot scrape recallwatch"
                                f" (up{{{selector}}}): no recall is being watched.",
                                "runbook_url": url,
                            },
                        }
                    ],
                },
            ],
        }
    ]
    assert _run_promtool_test(custom, tests, tmp_path) == ""
    # The committed rules (job="recallwatch") do fire on this scrape: the selector matters.
    assert "RecallwatchDown" in _run_promtool_test(RULES, tests, tmp_path)


# -- metrics named --------------------------------------------------------------------------


def test_rules_and_dashboards_name_only_exported_metrics() -> None:
    texts = [RULES.read_text()] + [d.read_text() for d in DASHBOARDS]
    texts += [p.read_text() for p in RULE_TESTS]
    used = {m for t in texts for m in METRIC.findall(t)}
    recorded = {r["record"].split(":")[1] for r in rules_of(RULES) if "record" in r}
    used -= recorded
    assert used and used <= EXPORTED_METRICS, sorted(used - EXPORTED_METRICS)


# -- dashboards -------------------------------------------------------------------------------


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    return exprs


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_is_importable_json(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job", "run"} <= names
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
    exprs = dashboard_exprs(dash)
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


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_queries_select_the_job_and_never_match_one_to_many(path: Path) -> None:
    """Every selector of a recallwatch metric filters on $job; no on(...) drops job/instance, so
    two daemons exporting one run never make a query fail with many-to-many matching."""
    dash = json.loads(path.read_text())
    for expr in dashboard_exprs(dash):
        for selector in re.findall(r"\brecallwatch_[a-z_]+(\{[^}]*\})?", expr):
            assert 'job=~"$job"' in selector, expr
        for on in re.findall(r"\bon\s*\(([^)]*)\)", expr):
            assert {"job", "instance"} <= {s.strip() for s in on.split(",")}, expr


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_k_sorts_numerically(path: Path) -> None:
    k = next(v for v in json.loads(path.read_text())["templating"]["list"] if v["name"] == "k")
    assert k["sort"] in {3, 4}  # Grafana: 3 numerical ascending, 4 numerical descending


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_mining_change_annotation_is_at_the_change_time(path: Path) -> None:
    """The exported value is the change time: Grafana places the marker there (in ms), so a
    change first scraped later, or arriving with a series' first sample, is still marked."""
    [ann] = [
        a
        for a in json.loads(path.read_text())["annotations"]["list"]
        if "recallwatch_mining_change_timestamp_seconds" in a.get("expr", "")
    ]
    assert ann["useValueForTime"] is True
    assert ann["expr"].replace(" ", "").endswith("*1000"), ann["expr"]
    assert "changes(" not in ann["expr"] and "[" not in ann["expr"]


def _unit(panel: dict[str, Any], ref: str) -> str:
    unit = str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o["matcher"] == {"id": "byFrameRefID", "options": ref}:
            for prop in o["properties"]:
                if prop["id"] == "unit":
                    unit = str(prop["value"])
    return unit


TIME_UNITS = {"s", "ms", "dtdurations", "dtdurationms"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_dashboard_units_fit_their_queries(path: Path) -> None:
    """Seconds in seconds, counts not in seconds, absolute differences not in percent."""
    dash = json.loads(path.read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr, unit = t["expr"], _unit(p, t["refId"])
            if "time() -" in expr or "histogram_quantile" in expr:
                assert unit in TIME_UNITS, (p["title"], expr, unit)
            if re.search(r"_total|_pending|_info", expr):
                assert unit not in TIME_UNITS, (p["title"], expr, unit)
            if re.search(r"_ratio\S*\s*-\s*\S*_ratio", expr):
                assert "percent" not in unit, (p["title"], expr, unit)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_example_config_links_the_dashboard_uid(path: Path) -> None:
    uid = json.loads(path.read_text())["uid"]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    url = urlparse(config["notifications"]["dashboard_url"])
    assert re.fullmatch(rf"(/.*)?/d/{re.escape(uid)}(/[^/]*)?", url.path), url.path


def test_every_daemon_alert_name_has_a_runbook_section() -> None:
    from recallwatch.alerting.rules import alertnames
    from recallwatch.commands.notify_test import TEST_ALERTNAME

    names = alertnames() | {TEST_ALERTNAME}
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.M))
    assert names <= headings, names - headings
