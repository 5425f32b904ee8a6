"""Both alert paths end to end: the real daemon (``recallwatch serve``), a real Prometheus with the
shipped rules (generated with short windows: ``alerts/generate.py --window 20s --for 0s``) and a
real Alertmanager with the shipped inhibit rule, notifying a real HTTP receiver.

- an evaluation failing from a run's first failure fires ``RecallwatchEvaluationFailing`` (the
  failure counter was exported at 0 before it);
- a run whose first checkpoint never finishes evaluating fires ``RecallwatchNoRecentEvaluation``
  (there is no last-success series, only the pending count);
- a regression after a mining change, alerted by the daemon's Alertmanager channel and by the
  Prometheus rule, reaches the receiver once: the Prometheus copy is inhibited.

Every wait is for a condition, bounded by a generous deadline.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import REPO, free_port, stop_processes, wait_for
from tests.helpers.prometheus import (
    ALERTMANAGER,
    PROMETHEUS,
    routing_to,
    start_alertmanager,
    start_prometheus,
    wait_ready,
)
from tests.helpers.receivers import Receiver, receiver  # noqa: F401 - fixture
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve, serve, synthetic  # noqa: F401 - fixtures

#: The rules' "last hour", shortened so that the alerts fire within a test.
WINDOW = "20s"
#: Generous: Prometheus needs the window of samples, a loaded 2-core machine is slow.
DEADLINE = 240.0
REGRESSION = "RecallRegressionAfterMiningChange"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Servers a test starts; stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    stop_processes(procs)


def alertmanager_for(
    tmp_path: Path, hook: Receiver, processes: list[subprocess.Popen[bytes]]
) -> str:
    """Alertmanager with the shipped inhibit rule, notifying ``hook`` within a second."""
    if not Path(ALERTMANAGER).is_file():
        pytest.skip("Alertmanager not found: apt-get install -y prometheus-alertmanager")
    inhibit = yaml.safe_load((REPO / "deploy" / "alertmanager-inhibit.yml").read_text())
    config = {**routing_to(f"{hook.url}/am"), **inhibit}
    url, proc = start_alertmanager(
        tmp_path, config, processes, f"--cluster.listen-address=127.0.0.1:{free_port()}"
    )
    wait_ready(proc, url, "Alertmanager")
    return url


def prometheus_for(
    tmp_path: Path, target: str, alertmanager: str, processes: list[subprocess.Popen[bytes]]
) -> str:
    """Prometheus scraping ``target`` every second with the shipped rules on short windows."""
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed: apt-get install -y prometheus")
    rules = tmp_path / "recallwatch.rules.yml"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "alerts" / "generate.py"),
            "--rules",
            str(rules),
            "--prometheusrule",
            str(tmp_path / "prometheusrule.yaml"),
            "--window",
            WINDOW,
            "--for",
            "0s",
        ],
        check=True,
        capture_output=True,
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}
            ]
        },
        "scrape_configs": [{"job_name": "recallwatch", "static_configs": [{"targets": [target]}]}],
    }
    url, proc = start_prometheus(tmp_path, config, processes)
    wait_ready(proc, url, "Prometheus")
    return url


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def firing(prometheus: str, alertname: str, run: str) -> bool:
    """Whether Prometheus has ``alertname`` firing for ``run``."""
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return any(
        a["labels"].get("alertname") == alertname
        and a["labels"].get("run") == run
        and a["state"] == "firing"
        for a in alerts
    )


def in_alertmanager(alertmanager: str, alertname: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds under ``alertname`` (inhibited ones included)."""
    r = httpx.get(
        f"{alertmanager}/api/v2/alerts",
        params={"filter": f'alertname="{alertname}"', "inhibited": "true"},
        timeout=10,
    )
    alerts: list[dict[str, Any]] = r.json()
    return alerts


def notified(hook: Receiver, alertname: str) -> list[dict[str, str]]:
    """The distinct label sets of ``alertname`` alerts the receiver was notified about."""
    seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for request in hook.received():
        for alert in request.json().get("alerts", []):
            labels = alert["labels"]
            if labels.get("alertname") == alertname:
                seen[tuple(sorted(labels.items()))] = labels
    return list(seen.values())


def test_the_shipped_rules_fire_and_a_regression_is_notified_once(
    tmp_path: Path,
    synthetic: SyntheticSet,  # noqa: F811 - fixture
    serve: type[Serve],  # noqa: F811 - fixture
    receiver: Callable[..., Receiver],  # noqa: F811 - fixture
    processes: list[subprocess.Popen[bytes]],
    request: pytest.FixtureRequest,
) -> None:
    hook = receiver()
    alertmanager = alertmanager_for(tmp_path, hook, processes)

    runs = {name: tmp_path / name for name in ("regress", "stuck", "failing")}
    for d in runs.values():
        d.mkdir()
    # A mining change that costs recall: the daemon's regression rule fires at checkpoint-200.
    write_checkpoint(runs["regress"], 100, synthetic, noise=0.3, mining={"range_min": 10})
    write_checkpoint(runs["regress"], 200, synthetic, noise=2.0, mining={"range_min": 0})
    # The first checkpoint of run "stuck" never finishes evaluating (its encoder holds).
    held = write_checkpoint(runs["stuck"], 1, synthetic, extra_files={"hold": ""})
    request.addfinalizer(lambda: (held / "hold").unlink(missing_ok=True))
    doc = config_doc(
        tmp_path,
        synthetic.path,
        runs["regress"],
        evaluation={"concurrency": 2, "timeout_seconds": 3600},
        notifications={
            "channels": [{"name": "am", "type": "alertmanager", "url": alertmanager}],
            "rules": [{"name": "regression", "type": "recall_regression", "channels": ["am"]}],
        },
    )
    doc["runs"] = [
        {"name": "regress", "directory": str(runs["regress"]), "settle_seconds": 0.3},
        {
            "name": "stuck",
            "directory": str(runs["stuck"]),
            "settle_seconds": 0.3,
            "encoder": "python:tests.ops.hold_encoder:encode",
        },
        {"name": "failing", "directory": str(runs["failing"]), "settle_seconds": 0.3},
    ]
    daemon = serve(write_config(tmp_path / "rw.yaml", doc), tmp_path / "serve.log").start()

    # The daemon's own alert reaches Alertmanager first (service="recallwatch", no source).
    def daemon_alert() -> list[dict[str, Any]]:
        return [
            a
            for a in in_alertmanager(alertmanager, REGRESSION)
            if "source" not in a["labels"] and a["labels"]["run"] == "regress"
        ]

    (from_daemon,) = wait_for(daemon_alert, timeout=DEADLINE, interval=0.5, what="daemon alert")
    assert from_daemon["labels"]["service"] == "recallwatch"

    prometheus = prometheus_for(
        tmp_path, daemon.url.removeprefix("http://"), alertmanager, processes
    )

    # Before run "failing" fails, Prometheus has its failure counter at 0 (a first failure is
    # an increase); then its first checkpoint fails.
    wait_for(
        lambda: query(
            prometheus,
            'recallwatch_evaluation_failures_total{run="failing",reason="bad_embeddings"} == 0',
        ),
        timeout=DEADLINE,
        interval=0.5,
        what="the failure counter at 0",
    )
    bad = write_checkpoint(runs["failing"], 1, synthetic, complete=False)
    corpus = bad / "eval_embeddings" / "corpus.npy"
    corpus.write_bytes(corpus.read_bytes()[:-64])  # truncated
    (bad / "trainer_state.json").write_text('{"global_step": 1}')

    wait_for(
        lambda: firing(prometheus, "RecallwatchEvaluationFailing", "failing"),
        timeout=DEADLINE,
        interval=0.5,
        what="RecallwatchEvaluationFailing for run failing",
    )
    wait_for(
        lambda: firing(prometheus, "RecallwatchNoRecentEvaluation", "stuck"),
        timeout=DEADLINE,
        interval=0.5,
        what="RecallwatchNoRecentEvaluation for run stuck",
    )
    assert not firing(prometheus, "RecallwatchNoRecentEvaluation", "regress")
    assert not firing(prometheus, "RecallwatchEvaluationFailing", "regress")
    assert (
        query(prometheus, 'recallwatch_last_successful_evaluation_timestamp_seconds{run="stuck"}')
        == []
    )

    # The Prometheus copy of the regression arrives and is inhibited by the daemon's alert.
    def prometheus_copy() -> dict[str, Any] | None:
        for a in in_alertmanager(alertmanager, REGRESSION):
            if a["labels"].get("source") == "prometheus" and a["status"]["inhibitedBy"]:
                return a
        return None

    copy = wait_for(prometheus_copy, timeout=DEADLINE, interval=0.5, what="the inhibited copy")
    assert copy["status"]["state"] == "suppressed"
    for label in ("alertname", "run", "dataset", "k"):
        assert copy["labels"][label] == from_daemon["labels"][label]
    # Prometheus' other alerts reach the receiver (they are not inhibited) ...
    wait_for(
        lambda: notified(hook, "RecallwatchEvaluationFailing"),
        timeout=DEADLINE,
        interval=0.5,
        what="RecallwatchEvaluationFailing at the receiver",
    )
    # ... and the regression reached it once: the daemon's alert, never the Prometheus copy.
    assert notified(hook, REGRESSION) == [from_daemon["labels"]]
