"""A real Prometheus (Debian package ``prometheus``) scrapes the daemon."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.conftest import Serve
from tests.daemon.helpers import (
    config_doc,
    free_port,
    stop_processes,
    wait_for,
    write_checkpoint,
    write_config,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus on a free loopback port scraping the given target every second."""
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed: apt-get install -y prometheus")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {"job_name": "recallwatch", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
            )
        )
        log.close()
        return f"http://127.0.0.1:{port}"

    yield start
    stop_processes(procs)


def test_prometheus_scrapes_recall(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], prometheus: Any
) -> None:
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 500, synthetic, noise=0.6)
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    daemon = serve(config, tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for(lambda: api.get("/api/v1/runs").json()[0]["latest_step"] == 500, what="evaluation")
        own = api.get("/api/v1/runs/demo/evaluations/checkpoint-500").json()
    expected = own["evaluations"][0]["metrics"]["recall"]["10"]

    base = prometheus(daemon.url.removeprefix("http://"))

    def queried() -> list[dict[str, Any]] | None:
        r = httpx.get(
            f"{base}/api/v1/query", params={"query": "recallwatch_recall_ratio"}, timeout=5
        )
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result or None

    result = wait_for(queried, timeout=60, interval=0.5, what="Prometheus to scrape the daemon")
    by_k = {r["metric"]["k"]: float(r["value"][1]) for r in result}
    assert by_k["10"] == pytest.approx(expected)
    assert {r["metric"]["run"] for r in result} == {"demo"}
    assert {r["metric"]["dataset"] for r in result} == {"synth"}
    # The scrape itself is healthy (up == 1) and the info metric came through OpenMetrics.
    up = httpx.get(f"{base}/api/v1/query", params={"query": "up"}, timeout=5).json()
    assert up["data"]["result"][0]["value"][1] == "1"
    info = httpx.get(
        f"{base}/api/v1/query", params={"query": "recallwatch_checkpoint_info"}, timeout=5
    ).json()["data"]["result"]
    assert info[0]["metric"]["checkpoint"] == "checkpoint-500"
