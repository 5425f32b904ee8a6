"""The shipped inhibit rules in a real Alertmanager: a regression alert of a run and held-out set
mutes that run's and set's ``RecallEarlyWarning`` (from either path), and nothing else."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.processes import REPO, free_port, stop_processes, wait_for
from tests.helpers.prometheus import ALERTMANAGER, routing_to, start_alertmanager, wait_ready


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    stop_processes(procs)


def _alert(alertname: str, run: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": alertname,
            "run": run,
            "dataset": "scifact",
            "k": "10",
            "service": "recallwatch",
            **labels,
        },
        "annotations": {"summary": alertname},
    }


def test_a_regression_alert_mutes_the_early_warning_of_its_run(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    if not Path(ALERTMANAGER).is_file():
        pytest.skip("Alertmanager not found: apt-get install -y prometheus-alertmanager")
    inhibit = yaml.safe_load((REPO / "deploy" / "alertmanager-inhibit.yml").read_text())
    config = {**routing_to("http://127.0.0.1:9/unused"), **inhibit}
    url, proc = start_alertmanager(
        tmp_path, config, processes, f"--cluster.listen-address=127.0.0.1:{free_port()}"
    )
    wait_ready(proc, url, "Alertmanager")
    posted = [
        # Run a: the daemon's regression alert and both paths' early warnings.
        _alert("RecallRegressionAfterMiningChange", "a"),
        _alert("RecallEarlyWarning", "a", source="prometheus"),
        _alert("RecallEarlyWarning", "a", baseline="checkpoint-2", rule="early"),
        # Run b: an early warning alone stays active.
        _alert("RecallEarlyWarning", "b", source="prometheus"),
    ]
    httpx.post(f"{url}/api/v2/alerts", json=posted, timeout=10).raise_for_status()

    def states() -> dict[tuple[str, str, str], list[str]] | None:
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=10).json()
        if len(alerts) < len(posted):
            return None
        return {
            (a["labels"]["alertname"], a["labels"]["run"], a["labels"].get("source", "daemon")): a[
                "status"
            ]["inhibitedBy"]
            for a in alerts
        }

    got = wait_for(states, timeout=30, what="the posted alerts")
    assert got[("RecallEarlyWarning", "a", "prometheus")]
    assert got[("RecallEarlyWarning", "a", "daemon")]
    assert got[("RecallEarlyWarning", "b", "prometheus")] == []
    assert got[("RecallRegressionAfterMiningChange", "a", "daemon")] == []
